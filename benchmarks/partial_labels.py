"""Partial labels: a segmenter trained with RN and CC drawn on only half its development
subjects against one trained with every label, against one trained on the
fully labelled half alone (the SN-only subjects left out), and the half-labelled model's
student (self-training), on the same split, seed and epochs; prints and writes JSON.

    python benchmarks/partial_labels.py --data data/dev --held-out data/held-out \\
        --epochs 24 --seed 0 --output benchmarks/results/partial-labels-seed0.json

The half-labelled copy of ``--data`` links the images and keeps the SN of every subject, and
RN and CC of every other development subject (the test subjects keep all three, so both
models are scored on the same labels); it trains with ``data.partial_labels=true``. The
annotated-only copy drops the SN-only subjects (and their place in the splits): what the
SN-only subjects add (``--without-annotated-only`` skips it). The self-trained arm: the
half-labelled model (the teacher) segments the SN-only subjects with ``sn-infer`` into
``derivatives/teacher`` of the half-labelled copy, at its own per-label thresholds, and a
student trains from scratch on the drawn labels and, where none is drawn, the teacher's
(``data.pseudo_label_source=teacher``; ``--without-self-training`` skips it). Every arm
trains with ``RECIPE`` (Dice + cross-entropy; each label's threshold chosen on the labels
drawn on its training subjects) and then the ``--override``s. The runs log to
a private MLflow store; the figures are the test split's DSC per structure
(``best/test/dsc`` in the slab, ``best/test/dsc_rn``, ``best/test/dsc_cc`` over the whole
volume) and, with ``--held-out``, each model's mean DSC on that dataset with ``sn-infer``
(``held_out/...``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from sn_platform.data.bids import discover_subjects, label_path
from sn_platform.data.splits import Splits, load_or_create_splits

LABELS = ("SN", "RN", "CC")
FIGURES = ("best/test/dsc", "best/test/dsc_rn", "best/test/dsc_cc")
# The recipe of both arms (before --override): Dice + cross-entropy. With the Dice loss
# alone a class drawn on few subjects can die (its softmax probability near 0, where the
# Dice gradient vanishes): the crus did, at 16 epochs, in the half-labelled run of seed 1.
# Each model's per-label thresholds are chosen where its labels agree best with those drawn
# on its training subjects (trainer.calibrate_thresholds): at 0.5 a model trained 24 epochs
# with Dice + cross-entropy draws the RN at 0.6-0.7 of the drawers' volume, and a student
# learns that from its teacher's masks.
RECIPE = ("loss=dice_bce", "trainer.calibrate_thresholds=true")
# The bounds: RN and CC within 0.03 of the fully labelled model, the SN within 0.01.
# Keyed by the figure without its prefix (best/test/dsc and held_out/dsc share a bound).
TOLERANCE = {"dsc": 0.01, "dsc_rn": 0.03, "dsc_cc": 0.03}


def half_labelled_copy(source: Path, target: Path, development: list[str]) -> list[str]:
    """``target``: ``source`` with RN and CC labels removed from every other development
    subject (images linked, labels copied); returns the subjects left with the SN only."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, copy_function=_link_images)
    sn_only = sorted(development)[::2]
    for participant_id in sn_only:
        for name in LABELS[1:]:
            label_path(target, "manual", participant_id, name).unlink()
    return sn_only


def annotated_only_copy(half: Path, target: Path, sn_only: list[str]) -> None:
    """``target``: the half-labelled copy ``half`` without the subjects in ``sn_only``
    (their folders, their rows in the splits); test subjects and folds stay as they were."""
    if target.exists():
        shutil.rmtree(target)
    dropped = {f"sub-{participant_id}" for participant_id in sn_only}
    shutil.copytree(half, target, symlinks=True, ignore=lambda _, names: dropped & set(names))
    splits = Splits.from_json((half / "splits_final.json").read_text())
    kept = [
        (tuple(i for i in train if i not in sn_only), tuple(i for i in val if i not in sn_only))
        for train, val in splits.folds
    ]
    kept_splits = Splits(test=splits.test, folds=tuple(kept), seed=splits.seed)
    (target / "splits_final.json").write_text(kept_splits.to_json())


def _link_images(source: str, target: str) -> None:
    """Symlink a subject's raw images, copy everything else (labels, tables, splits)."""
    if "derivatives" not in Path(source).parts and source.endswith(".nii.gz"):
        Path(target).symlink_to(Path(source).resolve())
    else:
        shutil.copy2(source, target)


def train(
    root: Path,
    store: str,
    epochs: int,
    seed: int,
    partial: bool,
    name: str,
    overrides: Sequence[str] = (),
) -> dict[str, float]:
    """One ``sn-train`` run ``name`` on ``root`` (training seed ``seed``, ``RECIPE``, then
    the Hydra ``overrides``); the test figures of its MLflow run."""
    command = [
        str(Path(sys.executable).with_name("sn-train")), f"data.root={root}", "localiser=atlas",
        "trainer.fold=null", f"trainer.max_epochs={epochs}", "optim.lr=3e-3",
        "trainer.evaluate_test=true", "trainer.progress=false", f"tracking.uri={store}",
        f"seed={seed}",
        f"data.partial_labels={str(partial).lower()}",
        f"run_name=partial-labels-{name}", *RECIPE, *overrides,
    ]  # fmt: skip
    subprocess.run(command, check=True)
    run = newest_run(store, name)
    return {key: float(run[f"metrics.{key}"]) for key in FIGURES}


def newest_run(store: str, name: str) -> pd.Series:
    """The newest MLflow run named ``partial-labels-{name}`` in ``store``."""
    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(
        search_all_experiments=True, filter_string=f"tags.mlflow.runName = 'partial-labels-{name}'",
        order_by=["start_time DESC"], max_results=1,
    )  # fmt: skip
    return runs.iloc[0]


def infer(
    root: Path, folder: Path, store: str, name: str, options: Sequence[str] = ()
) -> pd.DataFrame:
    """``sn-infer`` with run ``name``'s model on ``root`` into ``folder`` (replaced), with
    the ``options`` (``subjects=[...]``, ``infer.threshold=...``); its ``measures.tsv``."""
    if folder.exists():
        shutil.rmtree(folder)
    command = [
        str(Path(sys.executable).with_name("sn-infer")), f"input={root}", f"output={folder}",
        f"model_uri=runs:/{newest_run(store, name)['run_id']}/model", f"tracking.uri={store}",
        *options,
    ]  # fmt: skip
    subprocess.run(command, check=True)
    return pd.read_csv(folder / "measures.tsv", sep="\t", na_values="n/a")


def thresholds(store: str, name: str) -> dict[str, float]:
    """Run ``name``'s per-label thresholds (``calibration/threshold_<label>``)."""
    run = newest_run(store, name)
    return {label: float(run[f"metrics.calibration/threshold_{label}"]) for label in LABELS}


def teacher_masks(root: Path, store: str, name: str, subjects: Sequence[str]) -> None:
    """Run ``name``'s masks (at its own thresholds) of ``subjects`` of ``root`` in
    ``root/derivatives/teacher`` (the masks ``data.pseudo_label_source=teacher`` reads)."""
    infer(root, root / "derivatives" / "teacher", store, name, [f"subjects=[{','.join(subjects)}]"])


def held_out_figures(held_out: Path, store: str, name: str, folder: Path) -> dict[str, float]:
    """Run ``name``'s model on the dataset ``held_out`` (outputs in ``folder``); the mean
    DSC per structure against its manual labels (``held_out/dsc`` in the slab,
    ``held_out/dsc_rn``, ``held_out/dsc_cc`` over the whole volume)."""
    table = infer(held_out, folder, store, name)
    return {f"held_out/{key}": float(table[key].mean()) for key in ("dsc", "dsc_rn", "dsc_cc")}


def compared(arm: dict[str, float], full: dict[str, float]) -> dict[str, dict[str, Any]]:
    """``arm`` minus the fully labelled model's figures, and whether each reaches the
    issue's bound (no more than it below the fully labelled model)."""
    differences = {key: arm[key] - full[key] for key in arm}
    bounds = {key: value >= -TOLERANCE[key.rsplit("/", 1)[1]] for key, value in
              differences.items()}  # fmt: skip
    return {"minus_full": differences, "within_bounds": bounds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a phantom with SN, RN, CC")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0, help="training seed (same split)")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument(
        "--held-out", type=Path,
        help="also score every arm on this dataset's manual labels (more subjects than the "
        "test split's)",
    )  # fmt: skip
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE",
        help="a Hydra override for every arm (a loss, say); repeat for more",
    )  # fmt: skip
    parser.add_argument(
        "--without-annotated-only", action="store_true",
        help="leave out the model trained on the fully labelled half alone",
    )  # fmt: skip
    parser.add_argument(
        "--without-self-training", action="store_true",
        help="leave out the half-labelled model's student",
    )  # fmt: skip
    arguments = parser.parse_args()
    data = arguments.data.resolve()
    records = discover_subjects(data, labels=LABELS)
    splits = load_or_create_splits(
        data / "splits_final.json", {r.participant_id: r.group or "n/a" for r in records}, 5,
        0, 0.2,
    )  # fmt: skip
    half = data.with_name(f"{data.name}-half-labelled")
    sn_only = half_labelled_copy(data, half, splits.development)
    store = f"sqlite:///{data.with_name(f'{data.name}-partial-labels-mlruns')}.db"

    def arm(root: Path, name: str, partial: bool, extra: Sequence[str] = ()) -> dict[str, float]:
        overrides = [*arguments.override, *extra]
        result = train(root, store, arguments.epochs, arguments.seed, partial, name, overrides)
        if arguments.held_out is not None:
            folder = data.with_name(f"{data.name}-partial-labels-held-out") / name
            result |= held_out_figures(arguments.held_out.resolve(), store, name, folder)
        return result

    full = arm(data, "full", partial=False)
    report: dict[str, Any] = {
        "data": str(arguments.data),
        "held_out": None if arguments.held_out is None else str(arguments.held_out),
        "epochs": arguments.epochs,
        "seed": arguments.seed,
        "overrides": [*RECIPE, *arguments.override],
        "development_subjects": len(splits.development),
        "sn_only_subjects": len(sn_only),
        "test_subjects": len(splits.test),
        "fully_labelled": full,
    }
    report["half_labelled"] = arm(half, "half", partial=True)
    if not arguments.without_annotated_only:
        annotated = data.with_name(f"{data.name}-annotated-only")
        annotated_only_copy(half, annotated, sn_only)
        report["annotated_only"] = arm(annotated, "annotated-only", partial=False)
        report["half_minus_annotated_only"] = {
            key: report["half_labelled"][key] - value
            for key, value in report["annotated_only"].items()
        }
    if not arguments.without_self_training:
        teacher_masks(half, store, "half", sn_only)
        report["self_trained"] = arm(half, "self-trained", True,
                                     ["data.pseudo_label_source=teacher"])  # fmt: skip
    names = {"fully_labelled": "full", "half_labelled": "half",
             "annotated_only": "annotated-only", "self_trained": "self-trained"}  # fmt: skip
    report["thresholds"] = {key: thresholds(store, name) for key, name in names.items()
                            if key in report}  # fmt: skip
    for key in ("half_labelled", "annotated_only", "self_trained"):
        if key in report:
            report[f"{key}_against_full"] = compared(report[key], full)
    arguments.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
