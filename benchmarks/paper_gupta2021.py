"""Reference numbers of Gupta et al. 2021 (Nat. Commun. 12:6595), Tables 4 and 5: test MAE of Base, best SC, best TL."""

# dataset registry name -> (Base, best SC (may use physical attributes), best TL (EF input only))
PAPER: dict[str, tuple[float, float, float]] = {
    "jarvis-klu": (18.77, 10.79, 11.15), "jarvis-kaa": (5.234, 2.722, 2.832),
    "jarvis-optb88vdw-bandgap": (0.988, 0.279, 0.251), "jarvis-deltae": (0.850, 0.135, 0.125),
    "jarvis-encut": (246.25, 76.99, 82.26), "jarvis-ehull": (0.131, 0.058, 0.050),
    "jarvis-magmom-oszicar": (1.225, 0.438, 0.405), "jarvis-magmom-outcar": (1.176, 0.393, 0.376),
    "jarvis-eps": (3.829, 1.280, 1.262), "jarvis-ppowerfact": (650.5, 495.0, 494.0),
    "jarvis-npowerfact": (658.1, 484.2, 512.3), "jarvis-pem300k": (1.918, 1.086, 1.228),
    "jarvis-nem300k": (1.918, 1.086, 1.197), "jarvis-pseebeck": (163.30, 56.49, 60.25),
    "jarvis-nseebeck": (108.69, 48.93, 54.53), "jarvis-meps": (4.905, 1.784, 1.776),
    "jarvis-max-mode": (285.32, 57.38, 65.69), "jarvis-min-mode": (40.89, 24.12, 23.51),
    "jarvis-etc11": (81.66, 34.53, 33.19), "jarvis-etc12": (44.96, 16.60, 17.23),
    "jarvis-etc13": (42.54, 14.09, 13.93), "jarvis-etc22": (84.06, 34.62, 31.35),
    "jarvis-etc33": (84.12, 35.82, 34.22), "jarvis-etc44": (29.55, 15.23, 14.63),
    "jarvis-etc55": (26.61, 12.40, 11.74), "jarvis-etc66": (27.59, 13.53, 13.10),
    "jarvis-bulkmoduluskv": (49.11, 11.83, 11.28), "jarvis-shearmodulusgv": (24.28, 11.26, 11.01),
    "jarvis-mbj-bandgap": (1.911, 0.555, 0.534), "jarvis-spillage": (0.501, 0.410, 0.373),
    "jarvis-slme": (9.439, 7.193, 6.420), "jarvis-max-ir-mode": (426.0, 87.67, 103.4),
    "jarvis-min-ir-mode": (66.16, 38.52, 44.45), "jarvis-piezo-max-diel": (5.757, 3.911, 2.715),
    "jarvis-piezo-max-di": (6.977, 4.336, 3.561), "jarvis-piezo-max-diio": (2.577, 0.847, 0.774),
    "jarvis-piezo-max-eij": (0.520, 0.436, 0.367), "jarvis-piezo-max-dij": (46.47, 26.46, 23.46),
    "jarvis-exfoliation-energy": (62.93, 54.26, 51.56),
    "expt-formation-enthalpy": (1.0327, 0.0964, 0.0708), "expt-bandgap": (1.2061, 0.4458, 0.3551),
}
