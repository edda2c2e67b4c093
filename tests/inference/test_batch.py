"""sn-infer on phantom subjects: outputs, recomputed values, orientation, bad input, engines."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sn_platform import tracking
from sn_platform.data.bids import chimap_path, echo_path, label_path
from sn_platform.data.slab import place_slab
from sn_platform.evaluation.measures import chi_mean_ppm, nm_volume_ratio
from sn_platform.inference.batch import (
    REQUIRED_COLUMNS,
    OutputPaths,
    local_engine,
    prepare,
    write_reports,
)
from sn_platform.inference.bids_outputs import sidecar_path
from sn_platform.inference.options import BatchJob, InferenceOptions

pytestmark = pytest.mark.slow
CHAMPION = "models:/sn-vnet@champion"


def sn_infer(tmp_path: Path, store: str, *overrides: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-c", "from sn_platform.cli import infer; infer()",
        f"tracking.uri={store}", "infer.progress=false", f"hydra.run.dir={tmp_path}/hydra",
        *overrides,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)


def read_table(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_outputs_match_a_recomputation_from_the_written_files(
    two_site_cohort, registered_model, tmp_path
):
    output = tmp_path / "derivatives"
    subjects = "[001,002,003,004,005,006]"
    result = sn_infer(
        tmp_path, registered_model, f"input={two_site_cohort}", f"output={output}",
        f"subjects={subjects}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("measures.tsv", "agreement.json", "index.html", "dataset_description.json"):
        assert (output / name).exists(), name
    assert not (output / "errors.tsv").exists()
    description = json.loads((output / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["ModelURIs"] == [CHAMPION]
    rows = read_table(output / "measures.tsv")
    assert [r["participant_id"] for r in rows] == [f"sub-00{i}" for i in range(1, 7)]
    assert list(rows[0])[: len(REQUIRED_COLUMNS)] == list(REQUIRED_COLUMNS)
    for column in ("dsc", "hd95_mm", "nm_volume_ratio_manual", "chi_mean_ppm_manual"):
        assert column in rows[0]
    for row in rows:
        participant = row["participant_id"].removeprefix("sub-")
        paths = OutputPaths.of(output, participant)
        echo = nib.load(echo_path(two_site_cohort, participant, 1))
        mask_image = nib.load(paths.mask)
        assert mask_image.get_data_dtype() == np.uint8
        assert np.array_equal(mask_image.affine, echo.affine)
        assert mask_image.header.get_zooms() == echo.header.get_zooms()
        assert nib.load(paths.probseg).get_data_dtype() == np.float32
        assert paths.figure.exists()
        assert row["slab_source"] == "predicted"
        written = sorted(paths.mask.parent.glob(f"sub-{participant}_label-*_mask.nii.gz"))
        assert {p.name.split("_")[1] for p in written} == {"label-SN", "label-RN", "label-CC"}
        for path in written:
            assert np.array_equal(nib.load(path).affine, echo.affine)
        mask = np.asarray(mask_image.dataobj) > 0  # the whole SN
        slab = np.asarray(nib.load(paths.slab).dataobj) > 0  # below the predicted RN
        labels = {
            name: nib.load(label_path(two_site_cohort, source, participant, name)).get_fdata() > 0
            for name, source in (("SN", "manual"), ("RN", "manual"), ("CC", "manual"))
        }
        manual_slab = place_slab(labels["RN"], echo.affine, 3).mask
        manual = labels["SN"] & manual_slab
        in_manual_slab = mask & manual_slab
        dsc = 2 * (in_manual_slab & manual).sum() / (in_manual_slab.sum() + manual.sum())
        assert float(row["dsc"]) == pytest.approx(dsc, rel=1e-5)
        echo1 = echo.get_fdata()
        chi = nib.load(chimap_path(two_site_cohort, participant)).get_fdata()
        reference = labels["CC"] & manual_slab  # rater 1's crus cerebri, in the same slab
        for column, value in (
            ("chi_mean_ppm", chi_mean_ppm(chi, mask & slab)),
            ("chi_mean_ppm_whole", chi_mean_ppm(chi, mask)),
            ("chi_mean_ppm_manual", chi_mean_ppm(chi, manual)),
            ("nm_volume_ratio_manual", nm_volume_ratio(echo1, manual, reference)),
        ):
            written = float("nan") if row[column] == "n/a" else float(row[column])
            assert written == pytest.approx(value, rel=1e-5, nan_ok=True), column
        assert float(row["sn_volume_mm3"]) == pytest.approx(
            (mask & slab).sum() * np.prod(echo.header.get_zooms()), rel=1e-5
        )


def _reoriented_copy(source: Path, participant: str, target: Path, axcodes: str) -> None:
    """The subject's files stored in ``axcodes`` order (affine adjusted by nibabel)."""
    transform = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(nib.load(echo_path(source, participant, 1)).affine),
        nib.orientations.axcodes2ornt(tuple(axcodes)),
    )
    for path in source.rglob(f"sub-{participant}_*.nii.gz"):
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.load(path).as_reoriented(transform), destination)


def _segment(store: str, root: Path, output: Path, participants: list[str]) -> None:
    tracking.configure(store)
    options = InferenceOptions(progress=False)
    segmenters = prepare([tracking.load_segmenter(CHAMPION)], options)
    engine = local_engine(segmenters, BatchJob(root, output, options))
    write_reports(output, engine(participants), [CHAMPION], root)


def test_masks_are_identical_in_world_space_for_any_storage_orientation(
    two_site_cohort, registered_model, tmp_path
):
    participant = "004"
    masks = []
    for axcodes in ("RAS", "PIL", "SRA"):
        root = tmp_path / axcodes
        _reoriented_copy(two_site_cohort, participant, root, axcodes)
        _segment(registered_model, root, tmp_path / f"out-{axcodes}", [participant])
        image = nib.load(OutputPaths.of(tmp_path / f"out-{axcodes}", participant).mask)
        assert nib.aff2axcodes(image.affine) == tuple(axcodes)
        masks.append(nib.as_closest_canonical(image))
    for other in masks[1:]:
        np.testing.assert_allclose(other.affine, masks[0].affine, atol=1e-5)
        assert np.array_equal(np.asarray(other.dataobj), np.asarray(masks[0].dataobj))
    assert np.asarray(masks[0].dataobj).any()


def test_a_corrupt_subject_is_reported_and_the_others_are_written(
    two_site_cohort, registered_model, tmp_path
):
    root = tmp_path / "bids"
    shutil.copytree(two_site_cohort, root)
    broken = echo_path(root, "002", 2)
    broken.write_bytes(gzip.compress(b"not a nifti")[:20])  # a truncated download
    nan_echo = echo_path(root, "003", 1)
    image = nib.load(nan_echo)
    data = image.get_fdata()
    data[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data.astype(np.float32), image.affine), nan_echo)
    blank = echo_path(root, "005", 3)  # a blank series: zeros where the midbrain should be
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.int16), image.affine), blank)
    missing = echo_path(root, "006", 3)  # a series not acquired: the others still run
    missing.unlink()
    for number in (1, 2, 3):  # two runs of a series: ambiguous until a filter chooses
        echo = echo_path(root, "004", number)
        shutil.copy(echo, echo.with_name(f"sub-004_run-2_echo-{number}_part-mag_MEGRE.nii.gz"))
        echo.rename(echo.with_name(f"sub-004_run-1_echo-{number}_part-mag_MEGRE.nii.gz"))
    output = tmp_path / "out"
    result = sn_infer(
        tmp_path, registered_model, f"input={root}", f"output={output}", "subjects=[1,2,3,4,5,6]"
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("sn-infer: 5 subjects failed")
    errors = read_table(output / "errors.tsv")
    failed = ["sub-002", "sub-003", "sub-004", "sub-005", "sub-006"]
    assert [e["participant_id"] for e in errors] == failed
    runs = errors.pop(2)["reason"]
    assert runs.startswith(f"{echo_path(root, '004', 1).parent}: 2 files are channel echo-1")
    assert runs.endswith(
        "choose one with data.bids_filter (sn-infer: bids_filter), e.g. {MEGRE: {run: 1}}"
    )
    assert str(broken) in errors[0]["reason"] and "\n" not in errors[0]["reason"]
    assert "NaN" in errors[1]["reason"]
    assert errors[2]["reason"] == (
        f"{blank}: every voxel of the box around the midbrain is 0: no contrast to segment"
    )
    assert errors[3]["reason"].startswith(f"{missing}: missing channel echo-3, the magnitude")
    rows = read_table(output / "measures.tsv")
    assert [r["participant_id"] for r in rows] == ["sub-001"]
    assert not any(p.name.startswith(".tmp-") for p in output.rglob("*"))

    done = OutputPaths.of(output, "001").mask
    stamp = done.stat().st_mtime_ns
    again = sn_infer(
        tmp_path, registered_model, f"input={root}", f"output={output}", "subjects=[1,4]",
        "bids_filter={MEGRE: {run: 2}}",
    )  # fmt: skip
    assert again.returncode == 0 and done.stat().st_mtime_ns == stamp  # skipped, not redone
    sidecar = json.loads(sidecar_path(OutputPaths.of(output, "004").mask).read_text())
    run_2 = "bids:raw:sub-004/anat/sub-004_run-2_echo-1_part-mag_MEGRE.nii.gz"
    assert sidecar["SpatialReference"] == run_2
    rerun = sn_infer(
        tmp_path, registered_model, f"input={root}", f"output={output}", "subjects=[1]",
        "overwrite=true",
    )  # fmt: skip
    assert rerun.returncode == 0 and done.stat().st_mtime_ns != stamp


def test_ray_and_local_engines_write_the_same_masks(two_site_cohort, registered_model, tmp_path):
    outputs = {}
    for engine in ("local", "ray"):
        outputs[engine] = tmp_path / engine
        result = sn_infer(
            tmp_path, registered_model, f"input={two_site_cohort}",
            f"output={outputs[engine]}", "subjects=[1,4,5]", f"infer.engine={engine}",
            "infer.ray.num_actors=2",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
    # The local process convolves with every core's thread, an actor with one: the sums
    # round differently, so only voxels whose probability sits on the threshold may differ.
    for participant in ("001", "004", "005"):
        local, remote = (OutputPaths.of(outputs[e], participant) for e in ("local", "ray"))
        probability = np.asarray(nib.load(local.probseg).dataobj)
        np.testing.assert_allclose(
            np.asarray(nib.load(remote.probseg).dataobj), probability, atol=1e-4
        )
        differ = np.asarray(nib.load(local.mask).dataobj) != np.asarray(
            nib.load(remote.mask).dataobj
        )
        assert np.all(np.abs(probability[differ] - 0.5) < 1e-3), participant
    tables = [read_table(outputs[e] / "measures.tsv") for e in ("local", "ray")]
    assert [r["participant_id"] for r in tables[0]] == [r["participant_id"] for r in tables[1]]
    for local_row, ray_row in zip(*tables, strict=True):
        for column, value in local_row.items():
            if _is_number(value):
                assert float(ray_row[column]) == pytest.approx(float(value), rel=2e-2, abs=1e-6)
            else:
                assert ray_row[column] == value, column


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text not in ("nan", "n/a")


def test_a_folder_without_derivatives_is_segmented_and_scored_by_labels_kept_apart(
    two_site_cohort, registered_model, tmp_path
):
    raw = tmp_path / "raw"
    shutil.copytree(two_site_cohort, raw, ignore=shutil.ignore_patterns("derivatives"))
    outputs = {"alone": [], "scored": [f"labels_root={two_site_cohort}"]}
    for name, extra in outputs.items():
        result = sn_infer(tmp_path, registered_model, f"input={raw}",
                          f"output={tmp_path / name}", "subjects=[1,2]", *extra)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
    alone, scored = (read_table(tmp_path / name / "measures.tsv") for name in outputs)
    assert "dsc" not in alone[0] and "slab_offset_slices" not in alone[0]
    assert all(row["dsc"] not in ("", "n/a") for row in scored)
    assert [r["roi_source"] for r in alone] == [r["roi_source"] for r in scored]
    assert all(r["roi_source"] in ("localiser", "centre") for r in alone)
    for participant in ("001", "002"):
        masks = [nib.load(OutputPaths.of(tmp_path / n, participant).mask) for n in outputs]
        assert np.array_equal(*(np.asarray(m.dataobj) for m in masks))
    report = json.loads((tmp_path / "scored" / "agreement.json").read_text())
    assert set(report["nm_volume_ratio"]["cohens_d"]) == {"automatic", "manual", "truth"}
