"""The cascade's first stage by registration: the MNI template aligned to the subject.

A coarse network learns the grey levels of the images it was trained on; a registration
by mutual information reads any contrast. The MNI ICBM152 2009a T1 (``data.templates``)
is aligned to the subject's first echo by a similarity transform (rotation, translation,
one scale) maximising Mattes mutual information (SimpleITK, three resolutions), and the
midbrain's MNI position is mapped back onto the subject: the centre of the segmenter's
box. The same transform carries the atlas of the nuclei in MNI space
(``data.templates.nuclei_atlas_path``) onto the subject's grid, the atlas half of
``localise``'s consensus. A slab through the midbrain (10-40 mm) starts from its field of
view's centre on the midbrain, as such slabs are planned; a whole head from the images'
centres of mass.

Measured on Colin27 (a real T1 that no training used) in the phantom's slab geometries at
random poses: SN and RN centroids mapped within 1.8-2.7 mm of their published MNI
positions (`benchmarks/real_anatomy.py`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray

from sn_platform.data.bids import DataValidationError, Geometry, SubjectRecord
from sn_platform.data.templates import NUCLEI_ATLAS_LABELS, mni_template_path, nuclei_atlas_path
from sn_platform.inference.predictor import native_window
from sn_platform.inference.registration_cache import (
    load_registration,
    registration_key,
    store_registration,
)

# ``localiser=atlas``: the configuration value that selects this localiser.
ATLAS_LOCALISER = "atlas"
# The centre (MNI mm) of the SN, RN and crus together, where training centres the box on
# the labels: the phantom's structures registered back to MNI (8 subjects, SD 1-2 mm).
STRUCTURES_CENTRE_MNI_MM = (0.0, -17.5, -12.5)
# A field of view at least this deep (mm, along its most craniocaudal axis) is a whole
# head, initialised by centres of mass; thinner ones are slabs planned on the midbrain.
WHOLE_HEAD_DEPTH_MM = 100.0
# A registration whose scale leaves this range (subject / template) failed.
PLAUSIBLE_SCALE = (0.7, 1.4)
# Part of the key of every registration kept on disk: change it whenever
# register_template, its template or PLAUSIBLE_SCALE changes, so that none is reused.
REGISTRATION_VERSION = "similarity-mattes32-s421-p10-5-1-min20k-pointgradients-step0.05-v4"
# Share of the subject's voxels sampled by the metric at each level (4, 2, 1 times the
# subject's voxels): at full resolution a 0.5 mm subject has 4-8 times more voxels than
# the 1 mm template has detail, and 1 % of them (about 77 000) pin a 7-parameter
# transform. v2 (10, 10, 2 %) measured against 10 % at every level with the gradient
# filter: 2.8 times less CPU on 28 phantom subjects of sites A, B and C (3.4 on sites N
# and Q), the same median atlas-centroid error and smaller tails; v4 (10, 5, 1 % and
# ``MINIMUM_SAMPLES``) against v2, both stopping at ``MINIMUM_STEP_MM``: 18 % less CPU on
# sites A-C, the same on N and Q, the same median error (1.51 mm on A-C, 1.52 / 1.49 on N
# and Q), the largest 3.28 / 3.26 mm on A-C and 2.53 / 3.67 on N and Q
# (`benchmarks/registration.py`).
SAMPLING_PER_LEVEL = (0.1, 0.05, 0.01)
# ... and at least this many points at each level (all its voxels where it has fewer): a
# share alone leaves a 12-slice NM slab (0.9 M voxels) too few points (1 %: the largest
# centroid error on N and Q 5.8 mm).
MINIMUM_SAMPLES = 20_000
SHRINK_FACTORS = (4, 2, 1)
# The optimiser stops at each level once its step (mm of physical shift) falls below this:
# a tenth of the finest voxel, not ITK's habitual 0.001 mm. Measured against 0.001 mm on 28
# phantom subjects of sites A, B and C: 39 % less CPU, the same median atlas-centroid error
# (1.51 vs 1.50 mm), p90 2.18 vs 2.32, max 3.26 vs 3.22 (`benchmarks/registration.py`).
MINIMUM_STEP_MM = 0.05


def _ras_to_lps(point: NDArray[np.float64]) -> tuple[float, float, float]:
    """ITK's physical points are LPS; NIfTI's world (and the platform's) is RAS."""
    return (-float(point[0]), -float(point[1]), float(point[2]))


@lru_cache(maxsize=1)
def _template() -> sitk.Image:
    return sitk.Cast(sitk.ReadImage(str(mni_template_path("t1"))), sitk.sitkFloat32)


def craniocaudal_depth_mm(image: sitk.Image) -> float:
    """Extent (mm) of ``image`` along the axis closest to the world's z."""
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    axis = int(np.argmax(np.abs(direction[2])))
    return float(image.GetSize()[axis] * image.GetSpacing()[axis])


def initial_transform(subject: sitk.Image, template: sitk.Image) -> sitk.Similarity3DTransform:
    """Subject -> template points before optimisation: a slab's field-of-view centre on the
    template's midbrain (``STRUCTURES_CENTRE_MNI_MM``), a whole head by centres of mass."""
    if craniocaudal_depth_mm(subject) >= WHOLE_HEAD_DEPTH_MM:
        return sitk.CenteredTransformInitializer(
            subject, template, sitk.Similarity3DTransform(),
            sitk.CenteredTransformInitializerFilter.MOMENTS,
        )  # fmt: skip
    size = np.asarray(subject.GetSize(), dtype=np.float64)
    centre = np.asarray(subject.TransformContinuousIndexToPhysicalPoint(((size - 1) / 2).tolist()))
    midbrain = np.asarray(_ras_to_lps(np.asarray(STRUCTURES_CENTRE_MNI_MM)))
    transform = sitk.Similarity3DTransform()
    transform.SetCenter(centre.tolist())
    transform.SetTranslation((midbrain - centre).tolist())
    return transform


def sampling_shares(
    size: tuple[int, ...], shares: tuple[float, float, float], minimum_samples: int
) -> list[float]:
    """The metric's share of the voxels at each level (``SHRINK_FACTORS`` times a subject
    of ``size`` voxels): ``shares``, raised to ``minimum_samples`` points, at most all."""
    voxels = [float(np.prod([-(-n // f) for n in size])) for f in SHRINK_FACTORS]
    return [min(1.0, max(s, minimum_samples / v)) for s, v in zip(shares, voxels, strict=True)]


def register_template(
    subject: sitk.Image,
    seed: int = 1,
    sampling: tuple[float, float, float] = SAMPLING_PER_LEVEL,
    gradient_filters: bool = False,
    minimum_step_mm: float = MINIMUM_STEP_MM,
    minimum_samples: int = MINIMUM_SAMPLES,
) -> sitk.Similarity3DTransform:
    """The similarity transform taking subject points to template points (ITK's
    fixed -> moving), by Mattes mutual information (32 bins, ``sampling``: the share of
    the voxels at each level, fixed ``seed``) at 4, 2 and 1 times the subject's voxels,
    smoothed 2, 1 and 0 mm. Without ``gradient_filters`` the template's gradient is taken
    at the sampled points only, not filtered over its whole volume at every level (ITK's
    default, most of the CPU and no better; kept for ``benchmarks/registration.py``)."""
    template = _template()
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentagePerLevel(
        sampling_shares(subject.GetSize(), sampling, minimum_samples), seed=seed
    )
    method.SetMetricUseFixedImageGradientFilter(gradient_filters)
    method.SetMetricUseMovingImageGradientFilter(gradient_filters)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(1.0, minimum_step_mm, 200, relaxationFactor=0.6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(SHRINK_FACTORS))
    method.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(initial_transform(subject, template), inPlace=False)
    result = method.Execute(subject, template)
    composite = sitk.CompositeTransform(result)
    composite.FlattenTransform()
    return sitk.Similarity3DTransform(composite.GetNthTransform(0))


@lru_cache(maxsize=512)
def _registration(path: str, modified_ns: int) -> sitk.Similarity3DTransform | None:
    """``register_template`` of the image at ``path``; None when it fails or lands on an
    implausible scale. Cached per file version in the process (a subject is registered
    once, not once per validation epoch, nor again for its RN after its box) and on disk
    by the file's content (``registration_cache``: once across a sweep's processes)."""
    del modified_ns  # part of the cache key only
    key = registration_key(Path(path), REGISTRATION_VERSION)
    cached = load_registration(key)
    if cached is not None:
        return cached.transform
    transform = _plausible_registration(path)
    store_registration(key, transform)
    return transform


def _plausible_registration(path: str) -> sitk.Similarity3DTransform | None:
    subject = sitk.Cast(sitk.ReadImage(path), sitk.sitkFloat32)
    try:
        transform = register_template(subject)
    except RuntimeError:  # ITK's own failures (e.g. no overlap left to sample)
        return None
    scale = 1.0 / transform.GetScale()
    if not PLAUSIBLE_SCALE[0] <= scale <= PLAUSIBLE_SCALE[1]:
        return None
    return transform


def template_points_on(path: Path, points_mni: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """MNI points (N, 3) mm mapped onto the image at ``path`` (world RAS mm, (N, 3)) by
    ``register_template``; None when the registration failed."""
    transform = _registration(str(path), Path(path).stat().st_mtime_ns)
    if transform is None:
        return None
    inverse = transform.GetInverse()
    points = np.asarray(points_mni, dtype=np.float64).reshape(-1, 3)
    mapped = (inverse.TransformPoint(_ras_to_lps(p)) for p in points)
    return np.asarray([_ras_to_lps(np.asarray(p)) for p in mapped], dtype=np.float64)


def similarity_to_mni(transform: sitk.Similarity3DTransform) -> NDArray[np.float64]:
    """(4, 4) subject world RAS mm -> MNI RAS mm of ``register_template``'s transform (ITK
    maps LPS points: ``p -> A (p - c) + c + t``)."""
    flip = np.diag([-1.0, -1.0, 1.0])
    matrix = np.asarray(transform.GetMatrix()).reshape(3, 3)
    centre = np.asarray(transform.GetCenter())
    translation = np.asarray(transform.GetTranslation())
    ras = np.eye(4)
    ras[:3, :3] = flip @ matrix @ flip
    ras[:3, 3] = flip @ (centre + translation - matrix @ centre)
    return ras


@lru_cache(maxsize=1)
def _nuclei_atlas() -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    image = cast(nib.Nifti1Image, nib.load(nuclei_atlas_path()))
    return np.asarray(image.dataobj, dtype=np.uint8), np.asarray(image.affine, dtype=np.float64)


@dataclass(frozen=True)
class AtlasStructures:
    """The nuclei atlas on a subject's grid: ``masks`` label (SN, RN, CC) -> (X, Y, Z)
    bool, both sides; ``right`` (X, Y, Z) bool, the voxels right of the registered
    template's mid-sagittal plane (MNI x >= 0)."""

    masks: dict[str, NDArray[np.bool_]]
    right: NDArray[np.bool_]


def atlas_structures_on(
    to_mni: NDArray[np.float64], shape: tuple[int, int, int], affine: NDArray[np.float64]
) -> AtlasStructures:
    """The nuclei atlas (``data.templates.nuclei_atlas_path``) on a grid (``shape``,
    ``affine``: voxel -> world RAS mm) whose world maps to MNI by ``to_mni`` (4, 4),
    nearest neighbour, looked up only in the window the atlas's box reaches."""
    labels, atlas_affine = _nuclei_atlas()
    voxel_to_mni = to_mni @ affine
    along_i, along_j, along_k = np.ix_(
        *(np.arange(n) * voxel_to_mni[0, a] for a, n in enumerate(shape))
    )
    right = np.broadcast_to(along_i + along_j + along_k + voxel_to_mni[0, 3] >= 0.0, shape)
    atlas = Geometry(
        (labels.shape[0], labels.shape[1], labels.shape[2]), np.linalg.inv(to_mni) @ atlas_affine
    )
    window = native_window(atlas, Geometry(shape, affine))
    indices = np.stack(
        np.meshgrid(*(np.arange(s.start, s.stop) for s in window), indexing="ij"), axis=-1
    )
    voxel_to_atlas = np.linalg.inv(atlas_affine) @ voxel_to_mni
    atlas_voxels = np.rint(indices @ voxel_to_atlas[:3, :3].T + voxel_to_atlas[:3, 3]).astype(int)
    inside = np.all((atlas_voxels >= 0) & (atlas_voxels < np.asarray(labels.shape)), axis=-1)
    codes = np.zeros(inside.shape, dtype=np.uint8)
    codes[inside] = labels[tuple(atlas_voxels[inside].T)]
    masks = {}
    for label, code in NUCLEI_ATLAS_LABELS.items():
        mask = np.zeros(shape, dtype=bool)
        mask[window] = codes == code
        masks[label] = mask
    return AtlasStructures(masks, right)


def _anatomy(record: SubjectRecord) -> Path:
    """The magnitude image the template is registered to (``anatomical_image``)."""
    path = record.anatomical_image
    if path is None:
        raise DataValidationError(
            record.grid_image.parent,
            "no magnitude image (a MEGRE echo or an NM image) to register the MNI template "
            "to; the atlas localiser needs one beside a QSM-only model's Chimap",
        )
    return path


@dataclass(frozen=True)
class AtlasLocaliser:
    """A localiser without weights: ``locate`` maps ``centre_mni_mm`` (the structures'
    centre in MNI mm) onto the subject's magnitude image (its first magnitude channel, else
    its MEGRE echo 1 or NM image) by ``register_template``."""

    centre_mni_mm: tuple[float, float, float] = STRUCTURES_CENTRE_MNI_MM

    def locate(self, record: SubjectRecord) -> NDArray[np.float64] | None:
        """World centre (RAS mm) of the midbrain's structures, or None when the template
        could not be registered (the box then sits at the volume's centre, flagged)."""
        mapped = template_points_on(_anatomy(record), np.asarray([self.centre_mni_mm]))
        return None if mapped is None else mapped[0]

    def structures_on(
        self, record: SubjectRecord, shape: tuple[int, int, int], affine: NDArray[np.float64]
    ) -> AtlasStructures | None:
        """The nuclei atlas on the subject's grid (``shape``, ``affine``: voxel -> world
        RAS mm) through ``register_template``; None when the template could not be
        registered."""
        anatomy = _anatomy(record)
        transform = _registration(str(anatomy), anatomy.stat().st_mtime_ns)
        if transform is None:
            return None
        return atlas_structures_on(similarity_to_mni(transform), shape, affine)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON); ``from_dict`` rebuilds the localiser from it."""
        return {"kind": "atlas", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AtlasLocaliser:
        """The localiser of ``to_dict``'s data."""
        centre = tuple(float(v) for v in data["centre_mni_mm"])
        return cls(centre_mni_mm=(centre[0], centre[1], centre[2]))
