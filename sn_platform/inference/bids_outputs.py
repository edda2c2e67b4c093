"""What makes ``sn-infer``'s folder a valid BIDS derivative dataset.

Every image gets a JSON sidecar (``Sources`` and ``SpatialReference`` as BIDS URIs into
the input dataset, ``Type`` and ``Description``); ``measures.tsv`` gets a data dictionary
(``measures.json``: description and units of each column); JSON is strict (NaN and
infinity as ``null``); ``dataset_description.json`` links the input dataset as ``raw``;
what BIDS has no place for (tables, the report, figures, per-subject measures) is listed
in ``.bidsignore``, as fMRIPrep does. ``bids-validator-deno OUTPUT`` reports no error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sn_platform import __version__
from sn_platform.data.bids import scan_id, subject_dir
from sn_platform.data.bids_filter import parse_bids_name
from sn_platform.data.io import write_text

BIDS_VERSION = "1.10.0"
RAW = "raw"  # the DatasetLinks name of the input dataset in BIDS URIs
BIDSIGNORE = (
    "measures.tsv", "measures.json", "agreement.json", "errors.tsv", "index.html",
    "figures", "sub-*/anat/*_measures.json", "sub-*/ses-*/anat/*_measures.json",
)  # fmt: skip
STRUCTURES = {"SN": "substantia nigra", "RN": "red nucleus", "CC": "crus cerebri"}
UNIT_SUFFIXES = {"_mm3": "mm^3", "_mm": "mm", "_ppm": "ppm"}
# What each measures.tsv column holds (its units follow from the name: UNIT_SUFFIXES).
DESCRIPTIONS: dict[str, str] = {
    "participant_id": "subject label, as in the input dataset",
    "session_id": "session label, as in the input dataset (datasets with sessions)",
    "group": "diagnostic group, from the input's participants.tsv",
    "sn_volume_mm3": "volume of the automatic SN mask in the slab",
    "sn_volume_left_mm3": "volume of the automatic SN mask in the slab, left side",
    "sn_volume_right_mm3": "volume of the automatic SN mask in the slab, right side",
    "sn_volume_whole_mm3": "volume of the whole automatic SN mask",
    "rn_volume_mm3": "volume of the automatic red nucleus mask",
    "cc_volume_mm3": "volume of the automatic crus cerebri mask",
    "nm_volume_ratio": "neuromelanin volume ratio of the automatic SN mask in the slab (voxels "
    "of the NM-weighted image, echo 1 or acq-NM, above the NM threshold over the mask's "
    "voxels; dimensionless); n/a where the model reads no NM-weighted image",
    "chi_mean_ppm": "mean QSM susceptibility above 0.015 ppm inside the automatic SN mask in "
    "the slab; n/a where the subject has no Chimap",
    "nm_volume_ratio_whole": "neuromelanin volume ratio of the whole automatic SN mask",
    "chi_mean_ppm_whole": "mean QSM susceptibility above 0.015 ppm of the whole automatic SN",
    "qc_flag": "'ok', or the reasons to review the subject, separated by '; '",
    "dsc": "Dice coefficient, automatic vs manual SN mask, in the slab",
    "hd95_mm": "95th percentile Hausdorff distance, automatic vs manual mask",
    "dsc_rn": "Dice coefficient, automatic vs manual red nucleus, whole volume",
    "dsc_cc": "Dice coefficient, automatic vs manual crus cerebri, whole volume",
    "dsc_truth": "Dice coefficient, automatic vs true SN (phantom only)",
    "hd95_truth_mm": "95th percentile Hausdorff distance to the true SN",
    "manual_volume_mm3": "volume of the manual SN mask in the slab",
    "slices_in_agreement": "slices of the slab where the automatic and manual masks agree",
    "nm_volume_ratio_manual": "neuromelanin volume ratio of the manual SN mask in its slab",
    "chi_mean_ppm_manual": "mean QSM susceptibility of the manual SN mask in its slab",
    "nm_volume_ratio_whole_manual": "neuromelanin volume ratio of the whole manual SN mask",
    "chi_mean_ppm_whole_manual": "mean QSM susceptibility of the whole manual SN mask",
    "nm_volume_ratio_truth": "neuromelanin volume ratio of the true SN in its slab (phantom)",
    "chi_mean_ppm_truth": "mean QSM susceptibility of the true SN in its slab (phantom)",
    "nm_volume_ratio_whole_truth": "neuromelanin volume ratio of the whole true SN (phantom)",
    "chi_mean_ppm_whole_truth": "mean QSM susceptibility of the whole true SN (phantom)",
    "roi_source": "where the segmenter's box around the midbrain came from",
    "slab_source": "where the slab the measures use came from",
    "slab_bottom_mm": "world z of the slab's lowest slice centre",
    "slab_top_mm": "world z of the slab's highest slice centre",
    "slab_offset_slices": "slices between the predicted and the manual slab (positive: higher)",
}
LEVELS: dict[str, dict[str, str]] = {
    "roi_source": {
        "localiser": "the cascade's localiser found the structures",
        "centre": "the localiser found nothing: the box sits at the volume's centre",
        "whole": "no box: the whole field of view",
    },
    "slab_source": {
        "predicted": "below the predicted red nucleus",
        "manual": "below the manual red nucleus (infer.slab_from=manual)",
        "atlas": "below the registered template's red nucleus (the network found none)",
    },
}


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (JSON ``null``), and
    NumPy scalars as the Python numbers they hold."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """Strict JSON (``null`` for NaN and infinity, which JSON has no literal for)."""
    return json.dumps(_finite(value), indent=2, allow_nan=False) + "\n"


def read_measures(path: Path) -> dict[str, Any]:
    """A subject's measures JSON, ``null`` read back as NaN (the tables' missing value)."""
    row = json.loads(Path(path).read_text())
    return {k: float("nan") if v is None else v for k, v in row.items()}


def sidecar_path(image: Path) -> Path:
    """``x.nii.gz`` -> ``x.json``."""
    return image.with_name(image.name.removesuffix(".gz").removesuffix(".nii") + ".json")


def _entities(image: Path) -> dict[str, str]:
    """``sub-01_label-SN_mask.nii.gz`` -> ``{"sub": "01", "label": "SN", "suffix": "mask"}``."""
    name = parse_bids_name(image.name)
    if name is None:
        raise ValueError(f"{image.name}: not a BIDS file name")
    return {**name.entities, "suffix": name.suffix}


def image_sidecar(image: Path, inputs: Sequence[Path], images: Sequence[Path]) -> dict[str, Any]:
    """The sidecar of one output image.

    Parameters
    ----------
    image : a ``_mask`` or ``_probseg`` NIfTI in the scan's ``anat`` folder
    inputs : the images the network read (its channels, the grid's first)
    images : all output images of the subject; a ``label-X_mask`` is derived from the
        ``label-X_probseg`` among them when there is one, otherwise from the inputs
    """
    entities = _entities(image)
    folder = subject_dir(Path(), scan_id(entities["sub"], entities.get("ses"))).as_posix()
    raw = [f"bids:{RAW}:{folder}/{path.name}" for path in inputs]
    label = entities.get("label")
    structure = STRUCTURES.get(label or "", label)
    probseg = image.name.replace("_mask.", "_probseg.")
    sources = [f"bids::{folder}/{probseg}"] if any(
        other.name == probseg and other != image for other in images
    ) else raw  # fmt: skip
    sidecar: dict[str, Any] = {"Sources": sources, "SpatialReference": raw[0]}
    if entities["suffix"] == "probseg":
        sidecar["Description"] = (
            f"probability of the {structure} ({label}) per voxel, from the network's "
            "grid-sampled prediction resampled onto the grid of the first input"
        )
    elif entities.get("desc") == "slab":
        sidecar |= {
            "Type": "ROI",
            "Description": "the slab the network analysed; overlap and measures use its voxels",
        }
    else:
        sidecar |= {
            "Type": "ROI",
            "Description": f"{structure} ({label}), automatic segmentation on the grid of "
            "the first input",
        }
    return sidecar


def write_image_sidecars(images: Sequence[Path], inputs: Sequence[Path]) -> None:
    """Write the JSON sidecar of every image in ``images`` beside it."""
    for image in images:
        write_text(sidecar_path(image), json_text(image_sidecar(image, inputs, images)))


def column_description(column: str) -> dict[str, Any]:
    """Description and units of a ``measures.tsv`` column (units from the name's suffix)."""
    entry: dict[str, Any] = {"Description": DESCRIPTIONS.get(column, column.replace("_", " "))}
    if column in LEVELS:
        entry["Levels"] = LEVELS[column]
    measure = column.removesuffix("_manual")
    units = [u for suffix, u in UNIT_SUFFIXES.items() if measure.endswith(suffix)]
    if units:
        entry.setdefault("Units", units[0])
    return entry


def table_columns(table: Path) -> list[str]:
    """Header of a TSV file."""
    with Path(table).open() as handle:
        return handle.readline().rstrip("\n").split("\t")


def dataset_description(root: Path, model_uris: Sequence[str]) -> dict[str, Any]:
    """``dataset_description.json`` of the derivative, linking the input as ``raw``."""
    source = Path(root).resolve().as_uri()
    return {
        "Name": "sn-platform substantia nigra segmentation",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "sn-platform", "Version": __version__, "Description": "sn-infer"}],
        "SourceDatasets": [{"URL": source}],
        "DatasetLinks": {RAW: source},
        "ModelURIs": list(model_uris),
    }


README = """# sn-platform substantia nigra segmentation

Written by `sn-infer` (sn-platform {version}) from `{source}` with {models}.

Per subject, in `sub-<id>/anat/` (`sub-<id>/ses-<label>/anat/` for each session of a
dataset with sessions): `_label-SN_mask` (automatic SN mask, uint8, on the grid
and header of the first input), `_label-SN_probseg` (its probability), `_desc-slab_mask` (the
voxels analysed), each with a JSON sidecar; `_label-SN_measures.json` (the subject's row).
Cohort: `measures.tsv` (dictionary: `measures.json`), `agreement.json` (automatic vs
manual measures), `errors.tsv` (failed subjects), `index.html` (QC report) and `figures/`.
Files that BIDS has no place for are listed in `.bidsignore`.
"""


def write_dataset_files(
    output: Path, root: Path, model_uris: Sequence[str], columns: Iterable[str]
) -> None:
    """``dataset_description.json``, ``README.md``, ``.bidsignore`` and ``measures.json``."""
    output = Path(output)
    description = dataset_description(root, model_uris)
    write_text(output / "dataset_description.json", json_text(description))
    models = ", ".join(f"`{uri}`" for uri in model_uris) or "no model"
    text = README.format(version=__version__, source=Path(root).resolve(), models=models)
    write_text(output / "README.md", text)
    write_text(output / ".bidsignore", "\n".join(BIDSIGNORE) + "\n")
    dictionary = {column: column_description(column) for column in columns}
    write_text(output / "measures.json", json_text(dictionary))
