"""sn-infer's folder as a BIDS derivative: sidecars, data dictionary, strict JSON, and the
official validator's verdict on a real output with a failed subject."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from sn_platform.data.bids import echo_path
from sn_platform.inference.bids_outputs import (
    column_description,
    image_sidecar,
    json_text,
    read_measures,
    sidecar_path,
)
from sn_platform.inference.options import InferenceOptions
from tests.data.sessions import into_sessions

ANAT = Path("out/sub-07/anat")
ECHOES = [Path(f"in/sub-07/anat/sub-07_echo-{n}_part-mag_MEGRE.nii.gz") for n in (1, 2)]
IMAGES = [
    ANAT / "sub-07_label-SN_mask.nii.gz",
    ANAT / "sub-07_label-SN_probseg.nii.gz",
    ANAT / "sub-07_desc-slab_mask.nii.gz",
    ANAT / "sub-07_label-RN_mask.nii.gz",
]
RAW_ECHOES = [f"bids:raw:sub-07/anat/{echo.name}" for echo in ECHOES]


@pytest.mark.parametrize(
    ("image", "sources", "kind"),
    [
        (IMAGES[0], ["bids::sub-07/anat/sub-07_label-SN_probseg.nii.gz"], "ROI"),
        (IMAGES[1], RAW_ECHOES, None),
        (IMAGES[2], RAW_ECHOES, "ROI"),
        (IMAGES[3], RAW_ECHOES, "ROI"),  # no RN probability: made from the echoes
    ],
)
def test_sidecars_name_their_sources_as_bids_uris(image, sources, kind):
    sidecar = image_sidecar(image, ECHOES, IMAGES)
    assert sidecar["Sources"] == sources
    assert sidecar["SpatialReference"] == RAW_ECHOES[0]
    assert sidecar.get("Type") == kind
    assert sidecar["Description"]


def test_the_red_nucleus_is_named_in_its_description():
    assert "red nucleus (RN)" in image_sidecar(IMAGES[3], ECHOES, IMAGES)["Description"]


@pytest.mark.parametrize(
    ("column", "units"),
    [
        ("sn_volume_left_mm3", "mm^3"),
        ("hd95_mm", "mm"),
        ("chi_mean_ppm_manual", "ppm"),
        ("nm_volume_ratio", None),
        ("rn_volume_mm3", "mm^3"),  # a column this module does not know yet
    ],
)
def test_every_column_has_a_description_and_units_from_its_name(column, units):
    entry = column_description(column)
    assert entry.get("Units") == units and entry["Description"]


def test_json_is_strict_and_reads_back_nan():
    text = json_text({"dsc": float("nan"), "hd95_mm": float("inf"), "ci": [1.5, float("-inf")]})
    assert json.loads(text) == {"dsc": None, "hd95_mm": None, "ci": [1.5, None]}
    assert "NaN" not in text and "Infinity" not in text


def test_json_writes_numpy_scalars_as_numbers_and_their_nan_as_null():
    text = json_text({"n": np.int64(40), "r": np.float32(0.5), "d": [np.float32("nan")]})
    assert json.loads(text) == {"n": 40, "r": 0.5, "d": [None]}


def test_measures_read_back_with_nan_for_null(tmp_path):
    path = tmp_path / "sub-07_label-SN_measures.json"
    path.write_text(json_text({"participant_id": "sub-07", "dsc": float("nan"), "hd95_mm": 2.5}))
    row = read_measures(path)
    assert row["participant_id"] == "sub-07" and row["hd95_mm"] == 2.5
    assert math.isnan(row["dsc"])


def test_sidecar_path_replaces_the_double_extension():
    assert sidecar_path(IMAGES[1]).name == "sub-07_label-SN_probseg.json"


@pytest.mark.slow
def test_the_official_validator_finds_no_error_in_sn_infer_output(
    two_site_cohort, registered_model, tmp_path, bids_errors
):
    from sn_platform import tracking
    from sn_platform.inference.batch import (
        local_engine,
        prepare,
        select_subjects,
        write_reports,
    )
    from sn_platform.inference.options import BatchJob

    root = tmp_path / "bids"
    shutil.copytree(two_site_cohort, root)
    echo_path(root, "002", 2).write_bytes(b"truncated")  # errors.tsv is written too
    into_sessions(root, "005", ("pre", "post"))  # a longitudinal subject: two sessions
    tracking.configure(registered_model)
    options = InferenceOptions(progress=False)
    segmenters = prepare([tracking.load_segmenter("models:/sn-vnet@champion")], options)
    output = tmp_path / "derivatives"
    scans = select_subjects(root, ["001", "002", "005"])
    assert scans == ["001", "002", "005_ses-post", "005_ses-pre"]
    results = local_engine(segmenters, BatchJob(root, output, options))(scans)
    write_reports(output, results, ["models:/sn-vnet@champion"], root)

    assert (output / "errors.tsv").exists() and (output / "agreement.json").exists()
    assert bids_errors(output) == []
    dictionary = json.loads((output / "measures.json").read_text())
    header = (output / "measures.tsv").read_text().splitlines()[0].split("\t")
    assert list(dictionary) == header and header[:3] == ["participant_id", "session_id", "group"]
    sidecar = json.loads((output / "sub-001/anat/sub-001_label-SN_probseg.json").read_text())
    assert sidecar["Sources"][0] == "bids:raw:sub-001/anat/sub-001_echo-1_part-mag_MEGRE.nii.gz"
    # Each session written in its folder, measured as the same images without sessions are.
    rows = {(r["participant_id"], r["session_id"]): r for r in _table(output / "measures.tsv")}
    assert list(rows) == [("sub-001", "n/a"), ("sub-005", "ses-post"), ("sub-005", "ses-pre")]
    session = output / "sub-005/ses-pre/anat"
    sidecar = json.loads((session / "sub-005_ses-pre_label-SN_mask.json").read_text())
    assert sidecar["Sources"] == [
        "bids::sub-005/ses-pre/anat/sub-005_ses-pre_label-SN_probseg.nii.gz"
    ]
    assert sidecar["SpatialReference"] == (
        "bids:raw:sub-005/ses-pre/anat/sub-005_ses-pre_echo-1_part-mag_MEGRE.nii.gz"
    )
    alone = local_engine(segmenters, BatchJob(two_site_cohort, tmp_path / "alone", options))(
        ["005"]
    )
    for column, value in alone[0]["row"].items():
        if column not in ("participant_id", "group") and isinstance(value, float):
            for key in (("sub-005", "ses-post"), ("sub-005", "ses-pre")):
                written = float("nan") if rows[key][column] == "n/a" else float(rows[key][column])
                assert written == pytest.approx(value, rel=1e-5, nan_ok=True), column
    errors = _table(output / "errors.tsv")
    assert [(e["participant_id"], e.get("session_id", "n/a")) for e in errors] == [
        ("sub-002", "n/a")
    ]
    assert "sub-005_ses-pre" in (output / "index.html").read_text()
    links = json.loads((output / "dataset_description.json").read_text())["DatasetLinks"]
    assert links["raw"] == root.resolve().as_uri()


def _table(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))
