"""Does the registered cascade find the midbrain of a real brain it never saw?
Colin27 resampled into each site's slab at random poses, segmented by sn-infer, scored
against published centroids; prints JSON (and writes it with ``--output``).

    python benchmarks/real_anatomy.py --model-uri models:/sn-vnet@champion --poses 10 \
        --sites A B C --output benchmarks/results/real-anatomy.json

Per site protocol (``site_catalog`` of conf/phantom.yaml) and pose, drawn as
the phantom draws them (rotations up to 7.2, 7.2 and 12 degrees about x, y and z; the
midbrain up to ``midbrain_offset_mm`` off the field-of-view centre), Colin27 (a real T1
brain in MNI space, Debian's mricron-data) is sampled trilinearly at each voxel's MNI
position, ``world = R @ (mni - midbrain) + shift`` (mm), averaged over the site's slice
thickness, and written as a BIDS subject (the T1 as echoes 1-3, a zero QSM map). sn-infer
runs the cascade on it. Per pose: the distance (mm) of each predicted SN and RN centroid,
left and right of the posed mid-sagittal plane, from the posed published centroid; the QC
flags; whether the slab's centre lies in the SN's craniocaudal range. Summaries per site
and overall.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np
from hydra import compose, initialize_config_dir
from numpy.typing import NDArray
from scipy.ndimage import map_coordinates

from sn_platform.cli import phantom_config
from sn_platform.composition import CONFIG_DIR
from sn_platform.data.bids import chimap_path, echo_path
from sn_platform.data.io import write_nifti, write_text
from sn_platform.data.orientation import reorient_from_ras
from sn_platform.inference.batch import OutputPaths
from sn_platform.inference.bids_outputs import json_text, read_measures, sidecar_path
from sn_platform.phantom.generator import ras_affine
from sn_platform.phantom.regions import Pose
from sn_platform.phantom.settings import SiteProtocol

FloatArray = NDArray[np.float64]

COLIN27 = Path("/usr/share/mricron/templates/ch2better.nii.gz")
MISSING_COLIN27 = (
    f"real_anatomy: Colin27 ({COLIN27}) is absent; `apt-get install mricron-data` (as root) "
    "provides it"
)
# The anatomical origin of a pose: midway between the two SN centroids (MNI mm).
MIDBRAIN_MNI_MM = np.array([0.0, -18.0, -15.0])
# chi-separation atlas centroids (shared/PHANTOM.md, 'Real anatomy'):
# SN +/-10, -18, -15 mm; RN +/-5.5, -18, -10 mm (MNI).
CENTROIDS_MNI_MM = {
    "SN_left": (-10.0, -18.0, -15.0),
    "SN_right": (10.0, -18.0, -15.0),
    "RN_left": (-5.5, -18.0, -10.0),
    "RN_right": (5.5, -18.0, -10.0),
}
SN_RANGE_MNI_Z_MM = (-20.0, -10.0)  # the SN's craniocaudal extent (PHANTOM.md)
TOLERANCE_MM = 4.0
PEAK_MAGNITUDE = 1500.0  # the template's brightest voxel; tissue lands at a few hundred to it
N_ECHOES = 3
# sn-infer's QC reasons: no RN at all (neither the network's nor the registered atlas's),
# and the structures the consensus took from the atlas ("RN left, SN right from the
# registered atlas (...)").
RN_NOT_FOUND = "RN not found"
FROM_ATLAS = " from the registered atlas"


@dataclass(frozen=True)
class Template:
    """A T1 template in MNI space: ``data`` (I, J, K) float32, ``affine`` voxel -> MNI mm."""

    data: NDArray[np.float32]
    affine: FloatArray

    @property
    def voxel_mm(self) -> float:
        """Smallest voxel edge (mm)."""
        return float(np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)).min())


def load_template(path: Path = COLIN27) -> Template:
    """The template at ``path`` (Colin27, 0.5 mm) as float32 with its affine."""
    image = cast(nib.Nifti1Image, nib.load(path))
    return Template(np.asarray(image.dataobj, dtype=np.float32), np.asarray(image.affine))


def draw_pose(rng: np.random.Generator, offset_mm: Sequence[float]) -> Pose:
    """A pose as ``sample_subject_plan`` draws one: rotations (degrees) up to 0.6, 0.6 and
    1 times 12 about x, y, z; the midbrain up to ``offset_mm`` (per axis) off the centre."""
    rotation = rng.uniform(-12.0, 12.0, 3) * np.array([0.6, 0.6, 1.0])
    shift = rng.uniform(-1.0, 1.0, 3) * np.asarray(offset_mm)
    # Colin27 is real anatomy: no deformation (the seed is unused).
    return Pose(
        (float(rotation[0]), float(rotation[1]), float(rotation[2])),
        (float(shift[0]), float(shift[1]), float(shift[2])),
        deformation_seed=0,
    )


def world_of_mni(pose: Pose, mni_mm: FloatArray) -> FloatArray:
    """Scanner (world) positions (..., 3) mm of MNI points (..., 3) mm under ``pose``."""
    return (np.asarray(mni_mm) - MIDBRAIN_MNI_MM) @ pose.rotation.T + np.asarray(pose.shift_mm)


def mni_of_world(pose: Pose, world_mm: FloatArray) -> FloatArray:
    """MNI positions (..., 3) mm of world points (..., 3) mm: the inverse of ``world_of_mni``."""
    return (np.asarray(world_mm) - np.asarray(pose.shift_mm)) @ pose.rotation + MIDBRAIN_MNI_MM


def sample_template(template: Template, mni_mm: FloatArray) -> NDArray[np.float32]:
    """Trilinear values of ``template`` at MNI points (..., 3) mm; 0 outside it (air)."""
    points = np.asarray(mni_mm, dtype=np.float64)
    inverse = np.linalg.inv(template.affine)
    voxels = points.reshape(-1, 3) @ inverse[:3, :3].T + inverse[:3, 3]
    values = map_coordinates(template.data, voxels.T, order=1, mode="constant", cval=0.0)
    return np.asarray(values, dtype=np.float32).reshape(points.shape[:-1])


def slice_offsets_mm(thickness_mm: float, step_mm: float) -> FloatArray:
    """Through-plane offsets (mm) that cover a slice of ``thickness_mm`` evenly: the centres
    of ``ceil(thickness / step)`` equal parts (a boxcar slice profile)."""
    parts = max(math.ceil(thickness_mm / step_mm - 1e-9), 1)
    return ((np.arange(parts) + 0.5) / parts - 0.5) * thickness_mm


def posed_image(template: Template, site: SiteProtocol, pose: Pose) -> NDArray[np.float32]:
    """``template`` at ``pose`` on the site's RAS grid (X, Y, Z) (``ras_affine``): the mean
    of trilinear samples across each axial slice's thickness (world z)."""
    affine = ras_affine(site)
    voxels = np.stack(np.meshgrid(*(np.arange(n) for n in site.shape), indexing="ij"), axis=-1)
    world = voxels.reshape(-1, 3) @ affine[:3, :3].T + affine[:3, 3]
    offsets = slice_offsets_mm(site.slice_thickness_mm, template.voxel_mm)
    image = np.zeros(len(world), dtype=np.float32)
    for offset in offsets:
        image += sample_template(template, mni_of_world(pose, world + np.array([0.0, 0.0, offset])))
    image /= len(offsets)
    return image.reshape(site.shape)


def write_subject(
    root: Path, participant_id: str, site: SiteProtocol, image: NDArray[np.float32], scale: float
) -> None:
    """Echoes 1-3 (``image`` (X, Y, Z) in RAS order times ``scale``, int16, in the site's
    storage orientation) with sidecars as the phantom writes them, and a zero QSM map."""
    affine, reorient = reorient_from_ras(ras_affine(site), site.shape, site.orientation)
    magnitude = np.clip(np.rint(image * scale), 0, np.iinfo(np.int16).max).astype(np.int16)
    magnitude = reorient(magnitude)
    for number, te_ms in enumerate(site.echo_times_ms[:N_ECHOES], 1):
        path = echo_path(root, participant_id, number)
        write_nifti(path, magnitude, affine)
        sidecar = {
            "EchoTime": round(float(te_ms) * 1e-3, 6),
            "EchoNumber": number,
            "SliceThickness": site.slice_thickness_mm,
            "InstitutionName": f"Colin27 in phantom site {site.name}'s geometry",
        }
        write_text(sidecar_path(path), json.dumps(sidecar, indent=2))
    write_nifti(chimap_path(root, participant_id), np.zeros(magnitude.shape, np.float32), affine)


def write_dataset_files(root: Path, sites: Mapping[str, str], description: str) -> None:
    """participants.tsv (participant_id, group n/a, site) and dataset_description.json."""
    rows = ["participant_id\tgroup\tsite"]
    rows += [f"sub-{participant}\tn/a\t{site}" for participant, site in sites.items()]
    write_text(root / "participants.tsv", "\n".join(rows) + "\n")
    dataset = {
        "Name": "Colin27 in the phantom's site geometries (sn-platform real-anatomy benchmark)",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "License": "BSD-3-Clause (Colin27, Debian mricron-data)",
        "GeneratedBy": [{"Name": "benchmarks/real_anatomy.py", "Description": description}],
    }
    write_text(root / "dataset_description.json", json.dumps(dataset, indent=2))


def site_protocols(names: Sequence[str]) -> tuple[tuple[SiteProtocol, ...], tuple[float, ...]]:
    """The site protocols ``names`` of conf/phantom.yaml and its ``midbrain_offset_mm``."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="phantom", overrides=[f"sites=[{','.join(names)}]"])
    unknown = sorted(set(names) - set(cfg.site_catalog))
    if unknown:
        raise SystemExit(
            f"real_anatomy: unknown sites {unknown}; choose from {list(cfg.site_catalog)}"
        )
    config = phantom_config(cfg)
    return config.sites, config.midbrain_offset_mm


def run_cascade(
    data: Path,
    output: Path,
    model_uri: str,
    tracking_uri: str,
    work: Path,
    overrides: Sequence[str] = (),
) -> None:
    """``sn-infer`` (beside this Python, else on PATH) on ``data``, writing ``output``, with
    the extra Hydra ``overrides``."""
    beside = Path(sys.executable).with_name("sn-infer")
    executable = str(beside) if beside.exists() else shutil.which("sn-infer")
    if executable is None:
        raise SystemExit("real_anatomy: sn-infer not found; pip install -e . provides it")
    command = [
        executable, f"model_uri={model_uri}", f"tracking.uri={tracking_uri}",
        f"input={data}", f"output={output}", "label_source=null", "truth_source=null",
        "overwrite=true", "infer.progress=false", f"hydra.run.dir={work / 'hydra'}", *overrides,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if not (output / "measures.tsv").exists():
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"real_anatomy: sn-infer wrote no results: {last}")


def centroid_errors(
    masks: Mapping[str, NDArray[np.bool_]], affine: FloatArray, pose: Pose
) -> dict[str, float]:
    """Distance (mm) of each predicted centroid from its posed published one, per key of
    CENTROIDS_MNI_MM; NaN where that side is empty.

    ``masks`` ``SN`` and ``RN`` (X, Y, Z) bool on the grid of ``affine`` (4, 4, voxel ->
    world mm); left and right are split at the posed mid-sagittal plane (MNI x = 0).
    """
    errors = {}
    for structure in ("SN", "RN"):
        world = np.argwhere(masks[structure]) @ affine[:3, :3].T + affine[:3, 3]
        left = mni_of_world(pose, world)[:, 0] < 0.0
        for side, on_side in (("left", left), ("right", ~left)):
            key = f"{structure}_{side}"
            expected = world_of_mni(pose, np.asarray(CENTROIDS_MNI_MM[key]))
            found = world[on_side]
            errors[key] = (
                float(np.linalg.norm(found.mean(axis=0) - expected)) if len(found) else math.nan
            )
    return errors


def slab_mni_z(bottom_mm: float, top_mm: float, pose: Pose) -> float:
    """MNI z (mm) of the slab's centre plane (world z midway between its lowest and highest
    slice centres) at the posed midbrain's in-plane position; NaN without a slab."""
    centre = np.array([pose.shift_mm[0], pose.shift_mm[1], 0.5 * (bottom_mm + top_mm)])
    return float(mni_of_world(pose, centre)[2])


def score_pose(
    output: Path, participant_id: str, site: SiteProtocol, pose: Pose, failures: Mapping[str, str]
) -> dict[str, Any]:
    """One pose's entry: centroid errors, QC flags and the slab's MNI z (or sn-infer's error)."""
    entry: dict[str, Any] = {
        "participant_id": f"sub-{participant_id}",
        "site": site.name,
        "rotation_deg": list(pose.rotation_deg),
        "shift_mm": list(pose.shift_mm),
    }
    if entry["participant_id"] in failures:
        return entry | {
            "error": failures[entry["participant_id"]],
            "centroid_error_mm": dict.fromkeys(CENTROIDS_MNI_MM, math.nan),
            "all_within_tolerance": False,
            "rn_not_found": False,  # unknown: counted as failed
            "from_atlas": [],
            "slab_mni_z_mm": math.nan,
            "slab_in_sn_range": False,
        }
    paths = OutputPaths.of(output, participant_id)
    row = read_measures(paths.measures)
    images = {s: cast(nib.Nifti1Image, nib.load(paths.label_mask(s))) for s in ("SN", "RN")}
    masks = {s: np.asarray(image.dataobj) > 0 for s, image in images.items()}
    errors = centroid_errors(masks, np.asarray(images["SN"].affine), pose)
    z = slab_mni_z(row["slab_bottom_mm"], row["slab_top_mm"], pose)
    low, high = SN_RANGE_MNI_Z_MM
    return entry | {
        "centroid_error_mm": errors,
        "all_within_tolerance": all(e <= TOLERANCE_MM for e in errors.values()),
        "qc_flag": row["qc_flag"],
        "roi_source": row["roi_source"],
        "rn_not_found": rn_not_found(row["qc_flag"]),
        "from_atlas": structures_from_atlas(row["qc_flag"]),
        "slab_mni_z_mm": z,
        "slab_in_sn_range": bool(low <= z <= high),
    }


def rn_not_found(qc_flag: str) -> bool:
    """Whether sn-infer's QC flag says no RN was found (no slab could be placed)."""
    return any(reason.startswith(RN_NOT_FOUND) for reason in qc_flag.split("; "))


def structures_from_atlas(qc_flag: str) -> list[str]:
    """The structures (``"RN left"``, ...) sn-infer's QC flag says the consensus took from
    the registered atlas: those the network missed or put off the atlas's."""
    for reason in qc_flag.split("; "):
        if FROM_ATLAS in reason:
            return reason.split(FROM_ATLAS)[0].split(", ")
    return []


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.median(finite)) if finite else math.nan


def summarise(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Share of poses with every centroid within TOLERANCE_MM, RN-not-found count, share of
    slabs in the SN's range, QC-flagged count, the count sn-infer failed on (no centroid,
    no slab, not flagged), median error per centroid (mm, over the centroids found), and
    per structure and side the poses where it came from the registered atlas."""
    taken = [name for e in entries for name in e["from_atlas"]]
    return {
        "poses": len(entries),
        "share_all_within_tolerance": float(np.mean([e["all_within_tolerance"] for e in entries])),
        "rn_not_found": sum(e["rn_not_found"] for e in entries),
        "share_slab_in_sn_range": float(np.mean([e["slab_in_sn_range"] for e in entries])),
        "qc_flagged": sum(e.get("qc_flag", "ok") != "ok" for e in entries),
        "failed": sum("error" in e for e in entries),
        "poses_with_atlas_structures": sum(bool(e["from_atlas"]) for e in entries),
        "from_atlas": {name: taken.count(name) for name in sorted(set(taken))},
        "median_error_mm": {
            key: _median([e["centroid_error_mm"][key] for e in entries]) for key in CENTROIDS_MNI_MM
        },
    }


def read_failures(output: Path) -> dict[str, str]:
    """sn-infer's errors.tsv (participant_id -> reason); {} when every subject succeeded."""
    path = output / "errors.tsv"
    if not path.exists():
        return {}
    with path.open(newline="") as table:
        return {r["participant_id"]: r["reason"] for r in csv.DictReader(table, delimiter="\t")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", default="models:/sn-vnet@champion")
    parser.add_argument("--tracking-uri", default="sqlite:///mlruns/mlflow.db")
    parser.add_argument("--poses", type=int, default=10, help="poses per site")
    parser.add_argument("--sites", nargs="+", default=["A", "B", "C"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sn-bench-real-anatomy"))
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="an sn-infer override, repeatable (infer.atlas_tolerance_mm=null: the network alone)",
    )
    arguments = parser.parse_args()
    if not COLIN27.exists():
        raise SystemExit(MISSING_COLIN27)
    sites, offset_mm = site_protocols(arguments.sites)
    work = arguments.work
    shutil.rmtree(work, ignore_errors=True)
    data, output = work / "bids", work / "sn-infer"
    template = load_template()
    scale = PEAK_MAGNITUDE / float(template.data.max())
    poses: dict[str, tuple[SiteProtocol, Pose]] = {}
    for site in sites:
        # One stream per site: a site's poses do not depend on the other sites chosen.
        rng = np.random.default_rng([arguments.seed, *site.name.encode()])
        for number in range(1, arguments.poses + 1):
            participant_id = f"{site.name}{number:02d}"
            poses[participant_id] = (site, draw_pose(rng, offset_mm))
            write_subject(
                data, participant_id, site, posed_image(template, *poses[participant_id]), scale
            )
    described = {"seed": arguments.seed, "poses": arguments.poses, "template": str(COLIN27)}
    write_dataset_files(data, {p: s.name for p, (s, _) in poses.items()}, json.dumps(described))
    run_cascade(data, output, arguments.model_uri, arguments.tracking_uri, work, arguments.override)
    failures = read_failures(output)
    entries = [score_pose(output, p, s, pose, failures) for p, (s, pose) in poses.items()]
    report = {
        "benchmark": "real_anatomy",
        "template": str(COLIN27),
        "model_uri": arguments.model_uri,
        "overrides": arguments.override,
        "seed": arguments.seed,
        "poses_per_site": arguments.poses,
        "sites": [s.name for s in sites],
        "tolerance_mm": TOLERANCE_MM,
        "sn_range_mni_z_mm": list(SN_RANGE_MNI_Z_MM),
        "centroids_mni_mm": CENTROIDS_MNI_MM,
        "overall": summarise(entries),
        "per_site": {s.name: summarise([e for e in entries if e["site"] == s.name]) for s in sites},
        "per_pose": entries,
    }
    text = json_text(report)
    print(text, end="")
    if arguments.output is not None:
        write_text(arguments.output, text)


if __name__ == "__main__":
    main()
