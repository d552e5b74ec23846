"""Reading a lab's results CSV into a table of text cells, with how to re-save a file Excel wrote wrongly."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import pandas as pd

_BINARY = ((b"PK\x03\x04", "an Excel workbook (.xlsx) or another zip archive"),
           (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls)"), (b"PAR1", "a Parquet file"))
_SAVE_UTF8 = "save it as 'CSV UTF-8 (Comma delimited)' (Excel: File › Save As) and record that file"
#: How to re-save a file Excel wrote with semicolons or decimal commas.
SAVE_DOT = ("save it as CSV with ',' between cells and '.' decimals (Excel: File › Options › Advanced, untick "
             "'Use system separators', decimal separator '.')")


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a results CSV as text (cells are checked by ``validate_results``); rows labelled by their line.

    A row is labelled by the line it starts on (blank lines and rows of empty cells are
    skipped; a quoted cell may span lines). Missing trailing cells are empty. Cells beyond the
    header's columns are cut off and, unless all empty, kept in ``attrs["extra_cells"]``
    (line → cells) for ``validate_results`` to refuse: taking one as a row index would record
    a value against the wrong proposal.

    Raises:
        ValueError: the file is empty, not UTF-8, semicolon-separated or not readable as CSV.
    """
    header: list[str] | None = None
    lines: list[int] = []
    rows: list[list[str]] = []
    extra: dict[int, list[str]] = {}
    reader = csv.reader(io.StringIO(_decode(Path(path).read_bytes()), newline=""), skipinitialspace=True)
    last = 0
    try:
        for cells in reader:
            start, last = last + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                if sum(c.count(";") for c in cells) >= len(cells):
                    raise ValueError(f"line {start}: the header {','.join(cells)!r} looks like a semicolon-separated "
                                     f"file (as Excel writes where numbers have decimal commas): {SAVE_DOT}")
                header = [c or f"Unnamed: {j}" for j, c in enumerate(cells)]
                continue
            width = len(header)
            if any(c.strip() for c in cells[width:]):
                extra[start] = cells[width:]
            lines.append(start)
            rows.append(cells[:width] + [""] * (width - len(cells)))
    except csv.Error as exc:
        raise ValueError(f"line {reader.line_num}: {exc}") from None
    if header is None:
        raise ValueError("the file is empty (no header line)")
    df = pd.DataFrame(rows, columns=header, index=pd.Index(lines, name="line"), dtype=object)
    df.attrs["extra_cells"] = extra
    return df


def _decode(data: bytes) -> str:
    """The text of a results file (UTF-8, with or without BOM), or ``ValueError`` saying how to save it as such."""
    for magic, kind in _BINARY:
        if data.startswith(magic):
            raise ValueError(f"the file is {kind}, not CSV text: {_SAVE_UTF8}")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in data:
        raise ValueError(f"the file is not UTF-8 text: it looks like UTF-16 (Excel's 'Unicode Text'); {_SAVE_UTF8}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        column = len(data[line_start : exc.start].decode("utf-8", errors="replace")) + 1
        byte, line = data[exc.start : exc.start + 1], data.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"the file is not UTF-8 text: line {line}, column {column} has byte "
            f"0x{byte.hex()} ({byte.decode('cp1252', errors='replace')!r} in Windows-1252, the encoding of Excel's "
            f"plain 'CSV (Comma delimited)'); {_SAVE_UTF8}"
        ) from None
