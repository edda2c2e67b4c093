"""Where the MNI ICBM152 2009a symmetric template lives (inside the ``nilearn`` wheel), and
the atlas of the midbrain nuclei in its space (shipped with the package).

The template (T1 and its GM and WM maps, 1 mm; Fonov et al. 2009, 2011; licence in
nilearn's ``datasets/description/icbm152_2009.rst``) is read from the package data
without importing nilearn: the phantom builds its heads on it, the atlas localiser
registers it to a subject.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

TEMPLATE_FILES = {
    name: f"datasets/data/mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"
    for name in ("t1", "gm", "wm")
}


def mni_template_path(name: str) -> Path:
    """The template's ``t1``, ``gm`` or ``wm`` image (NIfTI, 1 mm, MNI mm).

    Raises FileNotFoundError, in one line, when nilearn is not installed.
    """
    if name not in TEMPLATE_FILES:
        raise ValueError(f"no template image {name!r}; choose from {sorted(TEMPLATE_FILES)}")
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "nilearn is not installed: the MNI ICBM152 2009a template ships in its wheel; "
            "pip install nilearn"
        )
    return Path(next(iter(spec.submodule_search_locations))) / TEMPLATE_FILES[name]


# The nuclei atlas's label codes (``sn_platform.phantom.nuclei_atlas`` builds it).
NUCLEI_ATLAS_LABELS = {"SN": 1, "RN": 2, "CC": 3}


def nuclei_atlas_path() -> Path:
    """The maximum-probability atlas of the SN, RN and crus in MNI space (NIfTI, 0.5 mm,
    ``NUCLEI_ATLAS_LABELS`` codes)."""
    return Path(__file__).parent / "atlases" / "nuclei_mni.nii.gz"
