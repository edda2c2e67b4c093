"""Fixed properties of the tissues around the midbrain (per-subject nuclei are in the plan).

Echo-1 contrast is relative to the crus cerebri after MT preparation; R2* in 1/s at 3 T;
chi in ppm relative to CSF. Grey matter is brighter than white matter on MT-prepared
images (less MT saturation), CSF dark on echo 1 (long T1) and bright late (low R2*);
the skull gives almost no signal and QSM is not defined there (0 ppm, as after masking).
"""

from __future__ import annotations

from sn_platform.phantom.compositor import Tissue, TissueClass

SCALP_SKULL = Tissue(0.2, 60.0, 0.0, TissueClass.SCALP_SKULL)
CSF = Tissue(0.55, 3.0, 0.0, TissueClass.CSF)
GREY_MATTER = Tissue(1.08, 16.0, 0.02, TissueClass.GREY_MATTER)
WHITE_MATTER = Tissue(1.0, 20.0, -0.03, TissueClass.WHITE_MATTER)
MIDBRAIN_TEGMENTUM = Tissue(1.05, 18.0, 0.01, TissueClass.BRAINSTEM)
THALAMUS = Tissue(1.04, 19.0, 0.01, TissueClass.GREY_MATTER)
PONS = Tissue(1.01, 19.0, -0.02, TissueClass.BRAINSTEM)
# Arterial inflow brightens flowing blood on a short-TR 3D GRE; oxygenated, so chi ~ 0.
ARTERIAL_BLOOD = Tissue(1.3, 10.0, 0.0, TissueClass.BLOOD_VESSEL)
# Deoxygenated venous blood: dark on late echoes, paramagnetic.
VENOUS_BLOOD = Tissue(0.9, 45.0, 0.25, TissueClass.BLOOD_VESSEL)
