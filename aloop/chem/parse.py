"""Formula text to validated compositions, fraction matrices and canonical keys."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from os import PathLike

import numpy as np
from pymatgen.core import Composition
from pymatgen.core.periodic_table import Element

from aloop.chem.elements import ELEMENT_INDEX, N_ELEMENTS

_SYMBOL = re.compile(r"[A-Z][a-z]?")
# Hydrate / adduct separators: "CuSO4·5H2O", "CuSO4*5H2O". A bare "." is left to pymatgen,
# which reads it as a decimal point ("Ti0.99Nb0.01").
_ADDUCT = re.compile(r"[·•∙*]")
_LEADING_COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?=[A-Z(\[])")
# "CuSO4.5H2O", "CuCl2.2NH3": a hydrate or ammine written with a period, which any formula parser reads as
# O4.5 H2 O / Cl2.2 N H3.
_DOTTED_HYDRATE = re.compile(r"((?<=[A-Za-z])[1-9]\d*|\))\.(\d+(?:\.\d+)?)\s*([HD]2O|NH3)\s*$")
# "Al2O3.2SiO2", "Na2SO4.2NaCl": other adducts written with a period, read as O3.2 / O4.2; warned about when an
# element after the decimal number repeats one before it.
_DECIMAL = re.compile(r"\d\.\d")
_CHARGE = re.compile(r"[A-Za-z)\]]\d*(?:\+|(?<![eE])-)\s*$|\^")
#: pymatgen drops amounts at or below this (``Composition.amount_tolerance``); the fast path does the same.
AMOUNT_TOLERANCE = 1e-8
_ISOTOPES = {"D": "H", "T": "H"}
KEY_DECIMALS = 4
# Plain formulas ("La1Pb1Re2", "Ti0.99Nb0.01NiSn") take a fast path that gives the same
# amounts as pymatgen (tested); anything with brackets, spaces or adducts goes to pymatgen.
_SIMPLE = re.compile(r"(?:[A-Z][a-z]?(?:\d+(?:\.\d*)?|\.\d+)?)+")
_TOKEN = re.compile(r"([A-Z][a-z]?)(\d+(?:\.\d*)?|\.\d+)?")
_VALID_SYMBOLS = frozenset(e.symbol for e in Element) | frozenset(_ISOTOPES)


class CompositionError(ValueError):
    """A formula that cannot become a composition; ``formula`` and ``reason`` say why."""

    def __init__(self, formula: object, reason: str) -> None:
        self.formula = formula
        self.reason = reason
        super().__init__(f"invalid formula {formula!r}: {reason}")


@dataclass(frozen=True)
class BadRow:
    """One rejected row of a batch: its position, the text and the reason."""

    index: int
    formula: object
    reason: str


class InvalidFormulasError(ValueError):
    """Every bad formula of a batch at once (``rows``), not just the first.

    The message names each formula as a reader finds it: by its 0-based ``index`` in the
    sequence given (``index 3``), or, with ``file`` (a CSV with a header line), as
    ``row N (line M)``: data rows counted from 1, file lines counting the header (and the blank lines
    pandas skips, when ``lines`` gives each data row's line), as the CLI does.
    """

    def __init__(self, rows: Sequence[BadRow], total: int, file: str | PathLike[str] | None = None,
                 lines: Sequence[int] | None = None) -> None:
        self.rows = list(rows)
        self.total = total
        at = (lambda i: lines[i]) if lines is not None else (lambda i: i + 2)  # noqa: E731 (blank lines skipped, if known)
        where = ((lambda i: f"row {i + 1} (line {at(i)})") if file is not None else (lambda i: f"index {i}"))
        shown = "\n".join(f"  {where(r.index)}: {r.formula!r}: {r.reason}" for r in self.rows[:20])
        more = f"\n  … and {len(self.rows) - 20} more" if len(self.rows) > 20 else ""
        within = f" in {file}" if file is not None else ""
        super().__init__(f"{len(self.rows)} of {total} formulas{within} are invalid:\n{shown}{more}")


def _parse_adducts(text: str) -> Composition:
    parts = _ADDUCT.split(text)
    total = Composition(parts[0]) if parts[0].strip() else None
    if total is None:
        raise CompositionError(text, "empty part before an adduct separator")
    for part in parts[1:]:
        match = _LEADING_COUNT.match(part)
        count = float(match.group(1)) if match else 1.0
        body = part[match.end() :] if match else part
        if not body.strip():
            raise CompositionError(text, "empty part after an adduct separator")
        total = total + Composition(body) * count
    return total


def _simple_amounts(text: str) -> dict[str, float]:
    amounts: dict[str, float] = {}
    for symbol, number in _TOKEN.findall(text):
        amt = float(number) if number else 1.0
        if amt <= AMOUNT_TOLERANCE:
            raise CompositionError(text, _zero(symbol, amt))
        amounts[symbol] = amounts.get(symbol, 0.0) + amt
    return amounts


def _pymatgen_amounts(text: str) -> dict[str, float]:
    try:
        comp = _parse_adducts(text) if _ADDUCT.search(text) else Composition(text)
    except CompositionError:
        raise
    except ValueError as exc:
        message = str(exc)
        if "negative" in message.lower():
            raise CompositionError(text, "negative amount") from None
        raise CompositionError(text, f"unparsable ({message})") from None
    except Exception as exc:  # pymatgen raises assorted types on malformed text
        raise CompositionError(text, f"unparsable ({type(exc).__name__}: {exc})") from None
    amounts = {str(el): float(amt) for el, amt in comp.get_el_amt_dict().items()}
    # pymatgen silently drops elements written with a zero amount ("Fe0O").
    for token in _SYMBOL.findall(text):
        if token in _VALID_SYMBOLS and _ISOTOPES.get(token, token) not in amounts and token not in amounts:
            raise CompositionError(text, _zero(token, None))
    return amounts


def _zero(symbol: str, amount: float | None) -> str:
    """The refusal of an element written with no amount to speak of (``amount``: as written, if known)."""
    symbol = _ISOTOPES.get(symbol, symbol)
    if amount == 0:
        return f"zero amount for {symbol}"
    return f"zero amount for {symbol} (amounts of at most {AMOUNT_TOLERANCE:g} count as zero)"


def _unknown_symbols(text: str) -> None:
    """Refuse a capitalised token that is no element before pymatgen misreads it ("Fe1E-3O": E with amount -3)."""
    for match in _SYMBOL.finditer(text):
        token = match.group(0)
        if token in _VALID_SYMBOLS:
            continue
        hint = ("; scientific notation needs a lowercase e (1e-3)" if token == "E" and match.start() > 0
                and text[match.start() - 1].isdigit() else "")
        raise CompositionError(text, f"unknown element {token!r}{hint}")


def _warn_repeated_after_decimal(text: str) -> None:
    """Warn about "Al2O3.2SiO2": a period that may be an adduct separator but is read as a decimal point.

    Only a formula whose one decimal number is that period: formulas with other decimal amounts repeat
    elements on purpose ("Bi1.2S1.2Ti2S4", "W0.9O2.7Co0.2O0.3" in citrine's and UCSB's data). A warning, not
    an error, since the decimal reading may be meant.
    """
    offset = 0
    for part in _ADDUCT.split(text):  # "CaSO4·1.5H2O": a decimal count of an adduct is fine
        decimals = list(_DECIMAL.finditer(part))
        for match in decimals if len(decimals) == 1 else ():  # "Bi1.2S1.2Ti2S4", "W0.9O2.7Co0.2O0.3": decimals meant
            before = set(_SYMBOL.findall(part[: match.start()]))
            if repeated := [t for t in _SYMBOL.findall(part[match.end():]) if t in before]:
                cut = offset + match.start() + 1
                warnings.warn(
                    f"formula {text!r}: read with '{part[match.start():match.end()]}' as a decimal number, although "
                    f"{repeated[0]} appears on both sides of it; if the period separates an adduct, write "
                    f"{text[:cut]}·{text[cut + 1:]} (or with '*')", UserWarning, stacklevel=2)
                return
        offset += len(part) + 1


@lru_cache(maxsize=1_000_000)
def _parse_cached(text: str) -> tuple[tuple[str, float], ...]:
    if not text.strip():
        raise CompositionError(text, "empty formula")
    if hydrate := _DOTTED_HYDRATE.search(text):
        head = text[: hydrate.start(2) - 1].rstrip()
        raise CompositionError(
            text, f"the period in '{hydrate.group(0).strip()}' would be read as a decimal point; write "
            f"{'an ammine' if hydrate.group(3) == 'NH3' else 'a hydrate'} as {head}·{hydrate.group(2)}{hydrate.group(3)} "
            "(or with '*')")
    if _CHARGE.search(text):
        raise CompositionError(text, "a charge is not part of a composition; write the neutral formula (Fe, not Fe2+)")
    _warn_repeated_after_decimal(text)
    if _SIMPLE.fullmatch(text):
        raw = _simple_amounts(text)
    else:
        _unknown_symbols(text)
        raw = _pymatgen_amounts(text)
    amounts: dict[str, float] = {}
    for el, amt in raw.items():
        symbol = _ISOTOPES.get(el, el)
        if symbol not in _VALID_SYMBOLS:
            raise CompositionError(text, f"unknown element {el!r}")
        if symbol not in ELEMENT_INDEX:
            raise CompositionError(text, f"element {symbol} is outside the 86-element ElemNet vocabulary")
        if not np.isfinite(amt):
            raise CompositionError(text, f"non-finite amount for {symbol}")
        if amt < 0:
            raise CompositionError(text, f"negative amount for {symbol}")
        amounts[symbol] = amounts.get(symbol, 0.0) + amt
    if not amounts or sum(amounts.values()) <= 0:
        raise CompositionError(text, "no positive amounts")
    if not np.isfinite(sum(amounts.values())):
        raise CompositionError(text, "the amounts are too large: their sum overflows; scale them down")
    return tuple(sorted(amounts.items()))


@lru_cache(maxsize=1_000_000)
def _encoded(text: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Column indices and atomic fractions of one formula (cached; the batch hot path)."""
    amounts = _parse_cached(text)
    total = sum(a for _, a in amounts)
    return tuple(ELEMENT_INDEX[el] for el, _ in amounts), tuple(a / total for _, a in amounts)


def clear_parse_cache() -> None:
    """Forget every parsed formula (for benchmarks that must measure parsing itself)."""
    _parse_cached.cache_clear()
    _encoded.cache_clear()


def parse_formula(formula: object) -> dict[str, float]:
    """Parse one formula into ``{element: amount}`` (amounts as written, not normalised).

    Raises:
        CompositionError: naming the formula and the reason (empty, unparsable, unknown
            element, element outside the ElemNet vocabulary, negative or zero amount).
    """
    if not isinstance(formula, str):
        raise CompositionError(formula, _not_text(formula))
    return dict(_parse_cached(formula))


def _not_text(value: object) -> str:
    """Why a value that is no string is no formula: an empty cell (None, NaN) is called missing."""
    if value is None or (isinstance(value, float) and value != value):
        return "missing formula (an empty cell)"
    return f"expected text, got {type(value).__name__}"


def to_composition(formula: object) -> Composition:
    """Parse and validate one formula into a pymatgen ``Composition``."""
    return Composition(parse_formula(formula))


def fractions(formula: object) -> dict[str, float]:
    """Atomic fractions (summing to 1) of one formula."""
    amounts = parse_formula(formula)
    total = sum(amounts.values())
    return {el: amt / total for el, amt in amounts.items()}


def check_formula_batch(formulas: object, what: str) -> None:
    """Refuse what would be read wrongly as a batch of formulas: one string (one row per character) or a table
    (one row per column name)."""
    if isinstance(formulas, str):
        raise TypeError(f"{what} expects a sequence of formulas, got one string {formulas!r}; wrap it in a list")
    if hasattr(formulas, "columns") and hasattr(formulas, "iloc"):  # a pandas DataFrame iterates over its columns
        raise TypeError(f"{what} expects a sequence of formulas, got a table (columns "
                        f"{', '.join(map(str, list(formulas.columns)[:5]))}); pass its formula column, e.g. df['formula']")


def check_formulas(formulas: Iterable[object]) -> list[BadRow]:
    """Every bad row of a batch with its reason (an empty list when all parse)."""
    check_formula_batch(formulas, "check_formulas")
    bad = []
    for i, f in enumerate(formulas):
        try:
            parse_formula(f)
        except CompositionError as exc:
            bad.append(BadRow(i, f, exc.reason))
    return bad


def to_fraction_matrix(formulas: Sequence[object], errors: str = "raise") -> tuple[np.ndarray, list[BadRow]]:
    """Convert a batch of formulas to an ``n × 86`` float32 matrix of atomic fractions.

    Args:
        formulas: ``n`` formula strings.
        errors: ``"raise"`` raises ``InvalidFormulasError`` listing every bad row by its
            0-based index in ``formulas``;
            ``"collect"`` leaves bad rows as zeros and returns them.

    Returns:
        ``(X, bad)``: ``X`` of shape ``n × 86`` (rows sum to 1) and the bad rows.
    """
    if errors not in ("raise", "collect"):
        raise ValueError(f"errors must be 'raise' or 'collect', got {errors!r}")
    check_formula_batch(formulas, "to_fraction_matrix")
    if not hasattr(formulas, "__len__"):  # a generator
        formulas = list(formulas)
    n = len(formulas)
    X = np.zeros((n, N_ELEMENTS), dtype=np.float32)
    bad: list[BadRow] = []
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for i, f in enumerate(formulas):
        if not isinstance(f, str):
            bad.append(BadRow(i, f, _not_text(f)))
            continue
        try:
            c, v = _encoded(f)
        except CompositionError as exc:
            bad.append(BadRow(i, f, exc.reason))
            continue
        rows.extend([i] * len(c))
        cols.extend(c)
        vals.extend(v)
    if bad and errors == "raise":
        raise InvalidFormulasError(bad, n)
    X[np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)] = np.asarray(vals, dtype=np.float32)
    return X, bad


def _key_text(pairs: Iterable[tuple[str, float]], decimals: int) -> str:
    # The rounding of both key functions (keys_from_matrix is its vectorised form), on
    # float32-exact values: rounding float64 text fractions and float32 matrix rows
    # differently disagreed at ties (Be0.5 vs Be0.4999).
    scale = 10.0**decimals
    return " ".join(f"{el}{round(x * scale) / scale:g}" for el, x in pairs)


def composition_key(formula: object, decimals: int = KEY_DECIMALS) -> str:
    """Canonical de-duplication key: elements sorted, fractions rounded (``"Fe0.4 O0.6"``).

    Two formulas whose atomic fractions agree to ``decimals`` places (4: 0.01 at.%) share a key, so
    de-duplication, a campaign's pool and ``exclude_measured`` treat them as one composition:
    ``Ba7.97Ga15.95Sn30.07`` and ``…Sn30.08`` do (fractions differ by 7e-5), ``Ti0.99Nb0.01NiSn`` and
    ``Ti0.98Nb0.02NiSn`` do not.
    """
    items = sorted(fractions(formula).items())
    return _key_text(((el, float(np.float32(x))) for el, x in items), decimals)


def keys_from_matrix(X: np.ndarray, decimals: int = KEY_DECIMALS) -> list[str]:
    """Canonical keys for rows of an ``n × 86`` fraction matrix (same format as ``composition_key``)."""
    from aloop.chem.elements import ELEMNET_ELEMENTS

    X = np.asarray(X, dtype=np.float32)
    names = np.asarray(ELEMNET_ELEMENTS, dtype=object)
    rank = np.argsort(np.argsort(names.astype(str)))  # alphabetical position of each column
    # Vectorised form of ``_key_text`` (same float64 rounding, half to even like ``round``):
    # each distinct rounded fraction is formatted once. Like composition_key, a trace
    # element rounding to 0 stays ("Nb0").
    rows, cols = np.nonzero(X)
    order = np.lexsort((rank[cols], rows))
    rows, cols = rows[order], cols[order]
    scale = 10.0**decimals
    values = X[rows, cols].astype(np.float64)
    rounded, inverse = np.unique(np.round(values * scale) / scale, return_inverse=True)
    texts = np.asarray([f"{v:g}" for v in rounded.tolist()], dtype=object)
    tokens = (names[cols] + texts[inverse.reshape(-1)]).tolist()
    bounds = np.searchsorted(rows, np.arange(len(X) + 1)).tolist()
    return [" ".join(tokens[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
