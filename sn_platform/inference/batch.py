"""Batch inference: predict, post-process, measure and QC every subject of a BIDS dataset,
writing a BIDS derivatives folder. One subject's failure never stops the others, every
file is written atomically, and a rerun skips the subjects already done.

The per-subject work (``run_subject``) is shared by the local engine here and the Ray
Data engine in ``sn_platform.inference.ray_engine``, so both write identical outputs.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np
from tqdm.auto import tqdm

from sn_platform.data.bids import (
    DataValidationError,
    Geometry,
    SubjectRecord,
    channel_path,
    discover_subjects,
    find_labels,
    find_scans,
    label_path,
    missing_channel_problem,
    missing_channels,
    scan_columns,
    scan_of_row,
    select_scans,
    subject_dir,
    validate_later_channels,
)
from sn_platform.data.bids_filter import NO_FILTER, BidsFilter
from sn_platform.data.channels import describe
from sn_platform.data.io import write_nifti, write_text
from sn_platform.errors import StorageError, one_line
from sn_platform.evaluation import plots
from sn_platform.evaluation.cohort import agreement_report
from sn_platform.evaluation.subject import evaluate_case, load_reference_case
from sn_platform.evaluation.tables import table_text
from sn_platform.inference.atlas import AtlasLocaliser, AtlasStructures
from sn_platform.inference.bids_outputs import (
    json_text,
    read_measures,
    table_columns,
    write_dataset_files,
    write_image_sidecars,
)
from sn_platform.inference.localise import localise
from sn_platform.inference.options import BatchJob, InferenceOptions
from sn_platform.inference.predictor import InferenceSettings, NativePrediction, Segmenter
from sn_platform.inference.qc import qc_flag
from sn_platform.inference.report import write_index
from sn_platform.inference.work_sharing import share_work

LABEL = "SN"
REQUIRED_COLUMNS = (
    "participant_id", "group", "sn_volume_mm3", "sn_volume_left_mm3", "sn_volume_right_mm3",
    "nm_volume_ratio", "chi_mean_ppm", "slab_source", "slab_bottom_mm", "slab_top_mm", "qc_flag",
)  # fmt: skip
MANUAL_COLUMNS = ("dsc", "hd95_mm", "nm_volume_ratio_manual", "chi_mean_ppm_manual")


@dataclass(frozen=True)
class OutputPaths:
    """Where one subject's outputs go in the derivatives folder."""

    mask: Path
    probseg: Path
    slab: Path
    figure: Path
    measures: Path

    @classmethod
    def of(cls, output: Path, scan: str) -> OutputPaths:
        """The outputs of scan ``scan`` (``bids.scan_id``) under ``output``."""
        anat = subject_dir(output, scan)
        stem = f"sub-{scan}_label-{LABEL}"
        return cls(
            mask=anat / f"{stem}_mask.nii.gz",
            probseg=anat / f"{stem}_probseg.nii.gz",
            slab=anat / f"sub-{scan}_desc-slab_mask.nii.gz",
            figure=Path(output) / "figures" / f"{stem}_qc.png",
            measures=anat / f"{stem}_measures.json",
        )

    def images(self) -> list[Path]:
        """The NIfTI outputs (each gets a JSON sidecar)."""
        return [path for path in vars(self).values() if path.name.endswith(".nii.gz")]

    def complete(self) -> bool:
        """All outputs exist (the measures JSON is written last)."""
        paths = (self.mask, self.probseg, self.slab, self.figure, self.measures)
        return all(p.exists() for p in paths)

    def label_mask(self, label: str) -> Path:
        """The mask of another label (RN, CC) beside the SN's."""
        return self.mask.with_name(self.mask.name.replace(f"label-{LABEL}_", f"label-{label}_"))


def prepare(segmenters: Sequence[Segmenter], options: InferenceOptions) -> list[Segmenter]:
    """Segmenters with the options' inference settings, in evaluation mode."""
    return [replace(s, settings=options.settings(s.settings)) for s in segmenters]


def predict_ensemble(segmenters: Sequence[Segmenter], record: SubjectRecord) -> NativePrediction:
    """Mean native-grid probability of several models (each with its own preprocessing);
    one model's prediction as it is."""
    predictions = [s.predict(record) for s in segmenters]
    if len(predictions) == 1:
        return predictions[0]
    labels = predictions[0].labels
    if any(p.labels != labels for p in predictions):
        raise ValueError(f"the ensemble's models predict different labels: {labels} and others")
    probability = np.stack([p.probabilities for p in predictions]).mean(axis=0, dtype=np.float32)
    field_of_view = np.logical_or.reduce([p.field_of_view for p in predictions])
    agreement = [p.tta_dice for p in predictions if math.isfinite(p.tta_dice)]
    tta_dice = float(np.mean(agreement)) if agreement else float("nan")
    sources = sorted({p.roi_source for p in predictions})
    return NativePrediction(
        probability, field_of_view, predictions[0].affine, labels, tta_dice, "+".join(sources)
    )


def _ordered(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with the required columns first (a session's ``session_id`` after the
    ``participant_id``), the manual ones next."""
    order = (REQUIRED_COLUMNS[0], "session_id", *REQUIRED_COLUMNS[1:], *MANUAL_COLUMNS)
    first = [c for c in order if c in row]
    return {**{c: row[c] for c in first}, **{k: v for k, v in row.items() if k not in first}}


def _truth_paths(job: BatchJob, scan: str, settings: InferenceSettings) -> dict[str, Path]:
    """Truth label files (SN, slab reference, NM reference) under ``job.truth_source``."""
    if job.truth_source is None:
        return {}
    names = {LABEL, settings.slab_reference, job.measures.reference_label}
    return {n: label_path(job.reference_root, job.truth_source, scan, n) for n in names}


def _manual_labels(job: BatchJob, record: SubjectRecord, names: Sequence[str]) -> SubjectRecord:
    """``record`` with the manual labels of ``job.labels_root`` (those that exist), when the
    labels are kept apart from the input."""
    if job.labels_root is None or job.label_source is None:
        return record
    found = find_labels(job.labels_root, job.label_source, record.scan, names, record.grid_image)
    return replace(record, labels=found)


def _atlas_structures(
    segmenter: Segmenter,
    record: SubjectRecord,
    prediction: NativePrediction,
) -> Callable[[], AtlasStructures | None] | None:
    """The registered atlas's nuclei on the prediction's grid, computed when asked, for a
    cascade whose first stage is the atlas; None for any other."""
    localiser = segmenter.localiser
    if not isinstance(localiser, AtlasLocaliser):
        return None
    shape = cast(tuple[int, int, int], tuple(prediction.field_of_view.shape))
    return partial(localiser.structures_on, record, shape, prediction.affine)


def segment_subject(
    segmenters: Sequence[Segmenter], record: SubjectRecord, output: Path, job: BatchJob
) -> dict[str, Any]:
    """Validate, predict, localise, measure, QC and write one subject; its TSV row."""
    options = job.options
    settings = segmenters[0].settings
    # Reads and checks the first channel, the QSM map and every label; then the other channels.
    case = load_reference_case(record, _truth_paths(job, record.scan, settings))
    validate_later_channels(record, Geometry(case.image.shape, case.affine))
    prediction = predict_ensemble(segmenters, record)
    found = localise(
        prediction, settings, options.keep_largest, case.manual, options.slab_from,
        _atlas_structures(segmenters[0], record, prediction),
        options.atlas_tolerance_mm,
    )  # fmt: skip
    row = evaluate_case(case, found.masks, found.slab, job.measures, settings.slab_rule)
    row |= {
        "roi_source": prediction.roi_source,
        "slab_source": found.slab_source,
        "slab_bottom_mm": found.slab.bottom_mm,
        "slab_top_mm": found.slab.top_mm,
    }
    row["qc_flag"] = qc_flag(
        row, prediction, found, settings, options.qc, job.measures.reference_label
    )
    row = _ordered(row)
    paths = OutputPaths.of(output, record.scan)
    header = cast(nib.Nifti1Header, nib.load(record.grid_image).header)
    for label, mask in found.masks.items():
        write_nifti(paths.label_mask(label), mask.astype(np.uint8), prediction.affine, like=header)
    probability = prediction.probability(LABEL).astype(np.float32)
    write_nifti(paths.probseg, probability, prediction.affine, like=header)
    # The voxels the slab measures use: below the predicted (or manual) RN.
    write_nifti(paths.slab, found.slab.mask.astype(np.uint8), prediction.affine, like=header)
    others = [paths.label_mask(label) for label in found.masks if label != LABEL]
    write_image_sidecars([*paths.images(), *others], list(record.channels.values()))
    title = f"sub-{record.scan}  {row['group']}  QC: {row['qc_flag']}"
    if "dsc" in row:
        title += f"  DSC {row['dsc']:.3f}"
    plots.save_subject_panel(
        case.image, case.chi, case.affine, found.masks, found.slab.mask,
        case.manual.get(LABEL), title, paths.figure,
    )  # fmt: skip
    write_text(paths.measures, json_text(row))
    return row


def run_subject(segmenters: Sequence[Segmenter], job: BatchJob, scan: str) -> dict[str, Any]:
    """One scan (``bids.scan_id``) end to end: ``{"row": ...}``, or ``{"error": ...}``
    naming the problem."""
    paths = OutputPaths.of(job.output, scan)
    if paths.complete() and not job.options.overwrite:
        return {"row": read_measures(paths.measures), "skipped": True}
    names = (LABEL, segmenters[0].settings.slab_reference, job.measures.reference_label)
    try:
        (record,) = discover_subjects(
            job.root,
            channels=segmenters[0].spec.channels,
            label_source=job.label_source if job.labels_root is None else None,
            labels=(),
            optional_labels=names,
            subjects=[scan],
            bids_filter=job.bids_filter,
        )
        record = _manual_labels(job, record, names)
        return {"row": segment_subject(segmenters, record, job.output, job)}
    except StorageError:
        raise  # a full disk stops the batch: every later subject would fail the same way
    except Exception as error:  # one subject's failure, whatever it is, must not stop the rest
        reason = one_line(error)
        if not isinstance(error, DataValidationError | ValueError | OSError):
            reason = f"{type(error).__name__}: {reason}"
        return {"error": {**scan_columns(scan), "reason": reason}}


def check_channels_present(
    root: Path, scans: Sequence[str], channels: Sequence[str], bids_filter: BidsFilter = NO_FILTER
) -> None:
    """Refuse, before any work, a dataset whose every scan lacks a channel the model reads:
    the model does not fit the dataset (an NM model given multi-echo scans). Where some
    scans have them all, the others end as one line each in ``errors.tsv``, as any
    scan that fails does.

    Raises
    ------
    DataValidationError
        naming the first scan's missing file and channel.
    """
    if not scans or any(not missing_channels(root, scan, channels, bids_filter) for scan in scans):
        return
    scan = scans[0]
    name = missing_channels(root, scan, channels, bids_filter)[0]
    hint = missing_channel_problem(root, scan, name, bids_filter)
    raise DataValidationError(
        channel_path(root, scan, name),
        f"missing channel {name}, {describe(name)}, which the model reads (channels "
        f"{list(channels)}); none of the {len(scans)} subjects has them all"
        + (f"; {hint}" if hint else ""),
    )


def select_subjects(root: Path, wanted: Iterable[str | int] | None) -> list[str]:
    """Scan ids (``bids.scan_id``: ``01``, or ``01_ses-pre`` for each session of a dataset
    with sessions) in ``root``; ``wanted`` may give 1 for ``sub-01`` (each of its sessions)
    or one session (``01_ses-pre``).

    Raises
    ------
    DataValidationError
        when the folder has no subjects or a wanted subject is missing.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataValidationError(root, "input folder does not exist")
    found = find_scans(root)
    if not found:
        raise DataValidationError(root, "no sub-* folders found")
    return found if wanted is None else select_scans(root, found, wanted)


Engine = Callable[[list[str]], list[dict[str, Any]]]


def _held_elsewhere(output: Path) -> Callable[[list[str]], None]:
    def say(held: list[str]) -> None:
        print(
            f"sn-infer: {len(held)} subjects are being written by another sn-infer in "
            f"{output}; waiting for them (sub-{held[0]} first)",
            file=sys.stderr,
            flush=True,
        )

    return say


def local_engine(segmenters: Sequence[Segmenter], job: BatchJob) -> Engine:
    """Runs subjects one after another in this process, with a progress bar; another
    sn-infer on the same output folder shares the work (``work_sharing.share_work``)."""

    def run(scans: list[str]) -> list[dict[str, Any]]:
        with tqdm(
            total=len(scans), desc="sn-infer", unit="subject", disable=not job.options.progress
        ) as bar:

            def one(scan: str) -> dict[str, Any]:
                result = run_subject(segmenters, job, scan)
                bar.update()
                return result

            return share_work(job.output, scans, one, _held_elsewhere(job.output))

    return run


def cohort_plots(
    rows: Sequence[dict[str, Any]], report: dict[str, Any], folder: Path
) -> list[Path]:
    """The report's cohort figures: auto-vs-manual scatter and Bland-Altman of both measures
    (where manual ROIs exist) and the HC-vs-PD effect sizes from each ROI."""
    figures = []
    with_manual = [r for r in rows if "nm_volume_ratio_manual" in r]
    if with_manual:
        figures += [folder / "cohort_scatter.png", folder / "cohort_bland_altman.png"]
        plots.save_agreement_scatter(with_manual, figures[0])
        plots.save_bland_altman(with_manual, figures[1])
    figures.append(folder / "cohort_effect_sizes.png")
    plots.save_effect_sizes(report, figures[-1])
    return figures


def write_reports(
    output: Path, results: Sequence[dict[str, Any]], model_uris: Sequence[str], root: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """measures.tsv, errors.tsv, agreement.json, index.html and the BIDS dataset files.

    Returns the rows and the errors.
    """
    output = Path(output)
    rows = sorted((r["row"] for r in results if "row" in r), key=scan_of_row)
    errors = [r["error"] for r in results if "error" in r]
    empty_table = "\t".join(REQUIRED_COLUMNS) + "\n"
    write_text(output / "measures.tsv", table_text(rows) if rows else empty_table)
    errors_path = output / "errors.tsv"
    if errors:
        write_text(errors_path, table_text(errors))
    else:
        errors_path.unlink(missing_ok=True)
    cohort_figures = []
    if rows:
        report = agreement_report(rows)
        write_text(output / "agreement.json", json_text(report))
        cohort_figures = cohort_plots(rows, report, output / "figures")
    write_dataset_files(output, root, model_uris, table_columns(output / "measures.tsv"))
    figures = [OutputPaths.of(output, scan_of_row(r)).figure for r in rows]
    write_index(output, rows, errors, figures, cohort_figures)
    return rows, errors
