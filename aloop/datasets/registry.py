"""The dataset registry: origin, citation, license, columns, units and checksum of every dataset."""

from __future__ import annotations

from dataclasses import dataclass, field

CROSSPROPTL = (
    "Gupta, V., Choudhary, K., Tavazza, F. et al. Cross-property deep transfer learning framework for "
    "enhanced predictive analytics on small materials data. Nat. Commun. 12, 6595 (2021). "
    "https://doi.org/10.1038/s41467-021-26921-5"
)
CROSSPROPTL_URL = "https://github.com/NU-CUCIS/CrossPropertyTL/tree/7258427fb5fe3cd8d34ece0fdfbd33f690d494a6/data"
JARVIS = (
    "Choudhary, K. et al. The joint automated repository for various integrated simulations (JARVIS) for "
    "data-driven materials design. npj Comput. Mater. 6, 173 (2020). https://doi.org/10.1038/s41524-020-00440-1"
)
CRABNET = (
    "Wang, A. Y.-T., Murdock, R. J., Kauwe, S. K., Oliynyk, A. O., Gurlo, A., Brgoch, J., Persson, K. A., "
    "Sparks, T. D. Compositionally restricted attention-based network for materials property predictions. "
    "npj Comput. Mater. 7, 77 (2021). https://doi.org/10.1038/s41524-021-00545-1"
)
OQMD = (
    "Saal, J. E., Kirklin, S., Aykol, M., Meredig, B., Wolverton, C. Materials design and discovery with "
    "high-throughput density functional theory: the Open Quantum Materials Database (OQMD). JOM 65, 1501 "
    "(2013); splits as published with CrabNet: " + CRABNET
)
CRABNET_URL = (
    "https://github.com/anthony-wang/CrabNet/tree/457b4d4835737ecbe4dd33e53174bd818bd82143/data/benchmark_data"
)
OLYMPUS_URL = "https://github.com/aspuru-guzik-group/olympus/tree/440b6b58ebfcaa2391cff7e94b570fb4fda98d68/src/olympus/datasets"
ROHR = (
    "Rohr, B. et al. Benchmarking the acceleration of materials discovery by sequential learning. "
    "Chem. Sci. 11, 2696 (2020). https://doi.org/10.1039/C9SC05999G; via Olympus: Häse, F. et al. "
    "Mach. Learn.: Sci. Technol. 2, 035021 (2021)"
)
MATMINER_DATASETS_URL = "https://github.com/Zhang-NJ-Lab/Datasets/tree/02c69072520ce5be65e2e51b0d237e8dc90d9a53"


@dataclass(frozen=True)
class DatasetSpec:
    """One registry entry: where a dataset comes from and how to read it.

    ``path`` is relative to the data directory; ``embedded`` entries ship inside an
    installed package instead and need no data directory. ``directions`` says, for the targets
    where the source does, which way is better (``"maximize"`` or ``"minimize"``); a target not
    in it has no agreed direction (a band gap, a Seebeck coefficient) and a benchmark must be told.
    """

    name: str
    path: str
    sha256: str
    rows: int
    description: str
    citation: str
    origin_url: str
    license: str
    formula_column: str | None
    targets: dict[str, str]  # column (after renaming) -> units
    group: str
    split_column: str | None = None
    rename: dict[str, str] = field(default_factory=dict)
    index_col: int | None = None
    valid_range: tuple[float, float] | None = None  # rows of the first target outside are dropped
    embedded: str | None = None  # "package:relative/path" for datasets shipped inside a wheel
    fraction_columns: tuple[str, ...] = ()
    notes: str = ""
    directions: dict[str, str] = field(default_factory=dict)  # target column -> "maximize" | "minimize"

    def __post_init__(self) -> None:
        for col, way in self.directions.items():
            if col not in self.targets or way not in ("maximize", "minimize"):
                raise ValueError(f"dataset {self.name!r}: directions must map targets to 'maximize' or 'minimize', "
                                 f"got {col!r}: {way!r}")

    def direction(self, target: str) -> str | None:
        """Which way is better for ``target`` (``"maximize"``/``"minimize"``), or ``None`` if the registry does not say."""
        return self.directions.get(target)


_REGISTRY: dict[str, DatasetSpec] = {}


def _add(spec: DatasetSpec) -> None:
    if spec.name in _REGISTRY:
        raise ValueError(f"duplicate dataset name {spec.name!r}")
    _REGISTRY[spec.name] = spec


# --- source: large DFT sets for pre-training (formula, target, split) -----------------------------
for _name, _file, _sha, _rows, _what, _units, _range in [
    ("oqmd-formation-enthalpy", "OQMD_Formation_Enthalpy", "f8be437a6f08f5cd526a15ec279b291c0dbc03c2e600f9180fcba8dea431ac52", 341700, "OQMD formation enthalpy", "eV/atom", (-5.0, 5.0)),
    ("oqmd-bandgap", "OQMD_Bandgap", "127feb901a37d6d47319baad90ae0cdf2e391714d388e63f4a7e67f7be4c745e", 341608, "OQMD band gap", "eV", None),
    ("oqmd-energy-per-atom", "OQMD_Energy_per_atom", "fdc3be96eda639bbfae08cb4661a37f351d20f5c676301a0e181f29a8eed2388", 341700, "OQMD total energy per atom", "eV/atom", None),
    ("oqmd-volume-per-atom", "OQMD_Volume_per_atom", "059b7f336c3bf26174cc93d4236caaa82509e6d4ed5e6179b701343d2dda349e", 341700, "OQMD volume per atom", "Å³/atom", None),
]:
    _add(DatasetSpec(
        name=_name, path=f"source/{_file}.csv.gz", sha256=_sha, rows=_rows, group="source",
        description=f"{_what} of ~340k compositions (mostly ternaries), CrabNet's train/val/test split",
        citation=OQMD, origin_url=f"{CRABNET_URL}/{_file}", license="CC BY 4.0 (OQMD); CrabNet splits MIT",
        formula_column="formula", targets={"target": _units}, split_column="split", valid_range=_range,
        notes="86 rows outside ±5 eV/atom are corrupt and dropped" if _range else "",
    ))
_add(DatasetSpec(
    name="mp-formation-energy-critexam", path="source/mp_formation_energy_critexam.csv.gz",
    sha256="727c8412942e62b6d6e07cb1b788ce435ff66169f3835080c8dcfde1c0791647", rows=85014, group="source",
    description="Materials Project formation energy, Bartel et al. critical-examination set, CrabNet split",
    citation="Bartel, C. J. et al. npj Comput. Mater. 6, 97 (2020); " + CRABNET,
    origin_url=f"{CRABNET_URL}/CritExam__Ef", license="CC BY 4.0", formula_column="formula",
    targets={"target": "eV/atom"}, split_column="split",
))
for _name, _file, _sha, _rows, _units in [
    ("matbench-mp-e-form", "matbench_mp_e_form", "db267c490c338762850b281cc008da5489a43726003868cc57ab48b52532a5ae", 132752, "eV/atom"),
    ("matbench-mp-gap", "matbench_mp_gap", "662bfca8c762f7ee9c9183ad298db436e3201db71466430c3d0b670e5d1d6830", 106113, "eV"),
]:
    _add(DatasetSpec(
        name=_name, path=f"source/{_file}.csv.gz", sha256=_sha, rows=_rows, group="source",
        description=f"Matbench {_file.split('_', 1)[1]} reduced to formula (polymorphs repeat)",
        citation="Dunn, A. et al. npj Comput. Mater. 6, 138 (2020); " + CRABNET,
        origin_url="https://github.com/anthony-wang/CrabNet/tree/457b4d4835737ecbe4dd33e53174bd818bd82143/data/matbench",
        license="MIT (Matbench)", formula_column="formula", targets={"target": _units},
    ))

# --- jarvis: 39 JARVIS-DFT properties with the cross-property TL paper's train/test split ----------
_JARVIS_TABLE = [
    # short name, column, units, sha256, rows
    ("bulkmoduluskv", "bulk_modulus_kv", "GPa", "51ffec803845ff7f4e7d78c787a2738304b9a67fb6845c96164666801753f4cf", 10743),
    ("deltae", "formation_energy_peratom", "eV/atom", "4c5fa8ddf10226f8c4f9e801bce77f0478a469b5bc4ed494eba49f2dde632f85", 28108),
    ("ehull", "ehull", "eV/atom", "274dd2f8501bd52c35a8a60c3a41541cd0d11494e65c0cd1a1b948710746d260", 27297),
    ("encut", "encut", "eV", "0ad470feeb3f3a3725953ab1736b7f03fb2d9ecbbc9b08a7d0113e2259b4dd38", 28056),
    ("eps", "eps_average_sq", "dimensionless", "1d51e8f5ff897afbd5711d69cdbd0ce79cafb5da8c41925f78be06bbc43881d5", 25150),
    ("etc11", "et_c11", "GPa", "ae3e80410b11e5346a0b706082f7f1c2312e1c7b7c5a92b6f0a610eb91f7b1ff", 10839),
    ("etc12", "et_c12", "GPa", "9e8d646abee045883c5e88ed68841b980a7633fda1563b9b2113d66be0a7f79d", 10759),
    ("etc13", "et_c13", "GPa", "c8ac30a598509261a263aa2fd11fb7af1a3af6c1ba395908c7df0235a93f3415", 10846),
    ("etc22", "et_c22", "GPa", "2763d5e6425e372790634a45d6a374ff9a344d0bb12e957d9c26c6bd2dc91f5b", 10832),
    ("etc33", "et_c33", "GPa", "8a28c6160647b4a348cf789bc8a7d454c5e1c88d4244d41b6a3ab88164add81a", 10856),
    ("etc44", "et_c44", "GPa", "ac8c14c0f61ec028f1f4ff7654cc77c8307752c25e0e51210842b52a59ebd2b6", 9986),
    ("etc55", "et_c55", "GPa", "4bf4767539339ad0a3c00da7ba4c58a36fb366c8dfa3106d5d7ea29c032d0f91", 9755),
    ("etc66", "et_c66", "GPa", "9a0d0e446211928be55f3010d0821f1c2ac8bd41d3b52d9093b63aa03bbe8265", 9739),
    ("exfoliation_energy", "exfoliation_energy", "meV/atom", "28766260a7338e11c1c4681fc66b64c442fa15868d9b629ba7d1aa242243f639", 557),
    ("kaa", "kpoints_array_average", "dimensionless", "91b3677d58f23c74984fe6bf35e7c8053b1544ef6c1335b0113990afebf6c276", 28163),
    ("klu", "kpoint_length_unit", "Å", "93dfe7f41cdbbf6e70cd792c0eac669d7ee981a4861b9321f91bd444b9bb00f2", 28171),
    ("magmom_oszicar", "magmom_oszicar", "μB", "f8d0547de49fd25b04b788e9419eea733d9fd7039edc4f31ed13f6cab13c89c4", 25844),
    ("magmom_outcar", "magmom_outcar", "μB", "02dd5b8d82299718ec7e187c5f91e065a195f0698932e0f82367295661517075", 25357),
    ("max_ir_mode", "max_ir_mode", "cm⁻¹", "45b051e6e8e45aa7bef2c74edd32eadd11c7c69569108799fa0d7dcac873aaf0", 2302),
    ("max_mode", "max_mode", "cm⁻¹", "3b6759062ae4acabc06eb3e208c0d10eb83335ecbcfe948ba0bda7fc0bb0bd29", 10963),
    ("mbj_bandgap", "mbj_bandgap", "eV", "a8f1d5179daf804f8aa1e3305cf2b0ae9a866cb89a43b95e408c93b3deece942", 7296),
    ("meps", "meps_average_sq", "dimensionless", "5182b86cb67c27176e51487c33b9501a81da6183607b67d91b8a879ace41e2ce", 11349),
    ("min_ir_mode", "min_ir_mode", "cm⁻¹", "c876cc09b065606605f773263e3e98afdede2980f47dd3661193327c1d140512", 2268),
    ("min_mode", "min_mode", "cm⁻¹", "f78908b933e7c31e3d094b9b434723bc50448d952a989987684ef1328bedbd09", 10930),
    ("nem300k", "n_em300k", "m_e", "11c3818e16de1de93d409e444da0f33d28296b2e7ac942eab6705de011a9183a", 16250),
    ("npowerfact", "n_powerfact", "μW/(mK²)", "d0f23d43ca8325f99de82acbc5f4f3049f2c1c4b744481f0c34e32d8b0b954e6", 16763),
    ("nseebeck", "n_Seebeck", "μV/K", "018dd67baeb3b50979c821775928353b851d9aa354b23e029b13d364f16d2fc1", 14144),
    ("optb88vdw_bandgap", "optb88vdw_bandgap", "eV", "1c4823ecf694b33080100f5f20e1d537606321651c312f98b24e3e4a50c8fe96", 28155),
    ("pem300k", "p_em300k", "m_e", "aef8e261324a82f4720e2546947311a6b9a4bc512e2559a0b1d042911c54fe0f", 16250),
    ("piezo_max_di", "dfpt_piezo_max_dielectric", "dimensionless", "8322392b955d2a913f856bd9a738a75ce54c51b21f096d50c594d3631f1a7007", 2126),
    ("piezo_max_diel", "dfpt_piezo_max_dielectric_electronic", "dimensionless", "051450af91828c92b27f70ee3d4dc80814e62ff66afd8f25579fa9f1d592f36c", 2126),
    ("piezo_max_diio", "dfpt_piezo_max_dielectric_ioonic", "dimensionless", "4e50d2bf7e9aebbf266e7041ef57e11abc14641ea4b025afdd01f9715ac99fd3", 2126),
    ("piezo_max_dij", "dfpt_piezo_max_dij", "pC/N", "27f7fb0cd24832987aa04fd1339cd353e63de66da9bb16534474b2a4e858cc86", 689),
    ("piezo_max_eij", "dfpt_piezo_max_eij", "C/m²", "c9748df064d6532fe2ec9f76f0f2fef09dc00f9e02681c483fdb54a9afc102fd", 1123),
    ("ppowerfact", "p_powerfact", "μW/(mK²)", "ac01230ad73dc09c38c31138301d8634990fcb5591159ab67b93a4d306a70d25", 16760),
    ("pseebeck", "p_Seebeck", "μV/K", "ae99ef7f2b9f4b83609e212263acb58a127dcd969260995712c0750be381cda9", 14439),
    ("shearmodulusgv", "shear_modulus_gv", "GPa", "3bb8c342191dc7d327f995bf4591ea230b56e7ce2d264c9ddd46973f12f92643", 10209),
    ("slme", "slme", "%", "f8239b945e330764c4ba196d343661af14e770ad6cea3b689e3e186f86109a6f", 3006),
    ("spillage", "spillage", "dimensionless", "de5bdb8b6bb974362b08bd7222d6ed6b97d93fae00aec2fa03f17a1acba3aae1", 3866),
]
for _short, _col, _units, _sha, _rows in _JARVIS_TABLE:
    _add(DatasetSpec(
        name=f"jarvis-{_short.replace('_', '-')}", path=f"jarvis/crossproptl_{_short}.csv.gz", sha256=_sha,
        rows=_rows, group="jarvis", description=f"JARVIS-DFT {_col}, cross-property TL paper's split",
        citation=f"{JARVIS}; split: {CROSSPROPTL}", origin_url=f"{CROSSPROPTL_URL}/{_short}",
        license="JARVIS data: NIST public data; CrossPropertyTL code/data: as published on GitHub",
        formula_column="pretty_comp", targets={_col: _units}, split_column="split",
    ))

# --- experimental: small measured datasets ---------------------------------------------------------
_add(DatasetSpec(
    name="expt-bandgap", path="experimental/crossproptl_expt_bandgap.csv.gz",
    sha256="16418e86103a85694c91728b2246d799a4a553aec92a2764400a4f43a72f90c7", rows=4920, group="experimental",
    description="Experimental band gaps, cross-property TL paper's split (paper: TL 0.3551, SC 0.4458 eV)",
    citation="Zhuo, Y., Mansouri Tehrani, A., Brgoch, J. J. Phys. Chem. Lett. 9, 1668 (2018); split: " + CROSSPROPTL,
    origin_url=f"{CROSSPROPTL_URL}/expt_bandgap", license="as published on GitHub (CrossPropertyTL)",
    formula_column="pretty_comp", targets={"gap expt": "eV"}, split_column="split",
))
_add(DatasetSpec(
    name="expt-formation-enthalpy", path="experimental/crossproptl_expt_deltae.csv.gz",
    sha256="d0a327ee9f31b4a5ebf14812c9d2f6a0f6d50fb2c038b291599ff5ca7316403e", rows=1643, group="experimental",
    description="Experimental formation enthalpies, cross-property TL paper's split (paper: TL 0.0708, SC 0.0964)",
    citation="Kim, G. et al. Sci. Data 4, 170162 (2017) (SSUB/IIT); split: " + CROSSPROPTL,
    origin_url=f"{CROSSPROPTL_URL}/expt_deltae", license="as published on GitHub (CrossPropertyTL)",
    formula_column="pretty_comp", targets={"delta_e": "eV/atom"}, split_column="split",
))
_add(DatasetSpec(
    name="matbench-expt-gap", path="experimental/matbench_expt_gap.csv",
    sha256="71e4b07212ac4d19da0b65d210e92d945b30ebb2c22a6d20a46dc737b6f2ee80", rows=4604, group="experimental",
    description="Matbench v0.1 expt_gap (5-fold KFold, shuffle, random_state 18012019)",
    citation="Zhuo, Y. et al. J. Phys. Chem. Lett. 9, 1668 (2018); Dunn, A. et al. npj Comput. Mater. 6, 138 (2020)",
    origin_url=f"{MATMINER_DATASETS_URL}/matbench_expt_gap.csv", license="MIT (Matbench)",
    formula_column="composition", targets={"gap expt": "eV"}, index_col=0,
))
_add(DatasetSpec(
    name="ucsb-thermoelectrics", path="experimental/ucsb_thermoelectrics.csv",
    sha256="d7789d213469c2cb83fee0d24dd690d09d578c17c3cdd44c421196e58eaef952", rows=1093, group="experimental",
    description="UCSB thermoelectrics: zT, Seebeck, PF, κ, σ at temperature T (284 formulas, doped compositions)",
    citation="Gaultois, M. W. et al. Chem. Mater. 25, 2911 (2013)", license="CC BY 4.0 (via matminer)",
    origin_url=f"{MATMINER_DATASETS_URL}/ucsb_thermoelectrics.csv", formula_column="composition",
    targets={"zT": "dimensionless", "S [muV/K]": "μV/K", "PF [W/mK^2]": "W/(mK²)", "kappa [W/mK]": "W/(mK)",
             "sigma [S/cm]": "S/cm", "T [K]": "K"}, index_col=0,
    directions={"zT": "maximize", "PF [W/mK^2]": "maximize"},
))
_add(DatasetSpec(
    name="estm-thermoelectric", path="experimental/estm_thermoelectric.csv",
    sha256="2ddfd878eee3eee3e8ba72e654ba65ba583d170c96ca8edd6dca876efd06ef77", rows=5205, group="experimental",
    description="ESTM thermoelectrics: ZT per temperature, Seebeck, σ, κ, PF (880 formulas)",
    citation="Na, G. S., Chang, H. npj Comput. Mater. 8, 214 (2022) (SIMD/ESTM)", license="as published on GitHub (KRICT-DATA/SIMD)",
    origin_url="https://github.com/KRICT-DATA/SIMD/tree/72d597cb6fdf6b79f6ca86ff759f9136de5d66ef/dataset", formula_column="Formula",
    targets={"ZT": "dimensionless", "temperature(K)": "K", "seebeck_coefficient(μV/K)": "μV/K",
             "electrical_conductivity(S/m)": "S/m", "thermal_conductivity(W/mK)": "W/(mK)", "power_factor(W/mK2)": "W/(mK²)"},
    directions={"ZT": "maximize", "power_factor(W/mK2)": "maximize"},
))
_add(DatasetSpec(
    name="citrine-thermal-conductivity", path="experimental/citrine_thermal_conductivity.csv",
    sha256="81440515967d7a7fc86a0552a555003c88f8224182699338307098e9be0b3d91", rows=872, group="experimental",
    description="Experimental thermal conductivities from Citrine", citation="Citrine Informatics; via matminer datasets",
    origin_url=f"{MATMINER_DATASETS_URL}/citrine_thermal_conductivity.csv", license="as stated by Citrine (via matminer)",
    formula_column="formula", targets={"k_expt": "W/(mK)"}, index_col=0,
))

# --- campaigns: fully measured closed-loop composition libraries ---------------------------------
for _plate, _sha, _rows, _metals in [
    ("3496", "fa9a27cfb0abe4d5b6c9937357dfaa0649e71a31d1784880eec00fed62f180a1", 2121, ("Ni", "Fe", "Co", "Mn", "Ce", "La")),
    ("3851", "e23139cc14c0510700d326e3fd24f070a171d9c7164756bd422be1916892f7c1", 2119, ("Ni", "Fe", "Co", "Ta", "Mn", "Cu")),
]:
    _add(DatasetSpec(
        name=f"oer-plate-{_plate}", path=f"campaigns/olympus_oer_plate_{_plate}.csv", sha256=_sha, rows=_rows,
        group="campaigns", description=f"JCAP OER catalyst plate {_plate}: mixed-metal oxides of {', '.join(_metals)} (lower overpotential is better)",
        citation=ROHR, origin_url=f"{OLYMPUS_URL}/dataset_oer_plate_{_plate}", license="MIT (Olympus)",
        formula_column=None, targets={"overpotential_V": "V"}, directions={"overpotential_V": "minimize"},
        fraction_columns=tuple(f"{m.lower()}_load" for m in _metals),
        notes="formula = the metal composition (e.g. Ni0.1Fe0.2Co0.6Mn0.1) of the oxide; oxygen content was not measured, raw fractions kept",
    ))

# --- embedded: ships inside the matminer wheel (works offline, no data directory) ----------------
_add(DatasetSpec(
    name="mp-transport", path="matminer/utils/data_files/mp_transport/transport_database.tar.xz",
    sha256="d6cecdd6dc68ab95bc4348026e3872e77a186b96189a4e34dd253f8bacf0b08d", rows=47737, group="embedded",
    description="Materials Project ab initio transport database (BoltzTraP; τ = 1e-14 s; T = 300 K, 1e20 cm⁻³ doping)",
    citation="Ricci, F. et al. An ab initio electronic transport database for inorganic materials. Sci. Data 4, 170085 (2017). https://doi.org/10.1038/sdata.2017.85",
    origin_url="https://doi.org/10.5061/dryad.gn001", license="CC0 (Dryad); shipped in matminer (BSD)",
    formula_column="pretty_formula",
    targets={"PF_p": "μW/(cm·K²)", "PF_n": "μW/(cm·K²)", "S_p": "μV/K", "S_n": "μV/K", "sigma_p": "1/(Ω·m)",
             "sigma_n": "1/(Ω·m)", "kappa_p": "W/(m·K)", "kappa_n": "W/(m·K)", "m_p": "m_e", "m_n": "m_e"},
    directions={"PF_p": "maximize", "PF_n": "maximize"},
    embedded="matminer", notes="mp_id is the Materials Project id; 7 noble-gas entries lie outside the ElemNet vocabulary",
))


class DatasetError(RuntimeError):
    """A dataset that cannot be loaded: unknown name, missing file, wrong checksum, unexpected columns."""


class UnknownDatasetError(DatasetError, KeyError):
    """No registry entry of that name (also a ``KeyError``, whose message reads as written, not quoted)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def get_spec(name: str) -> DatasetSpec:
    """The registry entry called ``name``; the error lists the known names."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        raise UnknownDatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(_REGISTRY))}") from None


def list_specs(group: str | None = None) -> list[DatasetSpec]:
    """All registry entries, optionally those of one group (source, jarvis, experimental, campaigns, embedded)."""
    groups = sorted({s.group for s in _REGISTRY.values()})
    if group is not None and group not in groups:
        raise ValueError(f"unknown dataset group {group!r}; groups: {', '.join(groups)}")
    return [s for s in _REGISTRY.values() if group is None or s.group == group]
