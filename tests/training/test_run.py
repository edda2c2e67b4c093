"""sn-train end to end: a tracked smoke run, exact resume, the pyfunc model, bad configs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from sn_platform.composition import CONFIG_DIR
from sn_platform.data.bids import discover_subjects
from sn_platform.data.roi import mask_centre
from sn_platform.data.splits import Splits
from sn_platform.errors import ConfigError
from sn_platform.evaluation.metrics import dice
from sn_platform.evaluation.subject import load_reference_case
from sn_platform.evaluation.thresholds import THRESHOLD_GRID
from sn_platform.inference.atlas import AtlasLocaliser
from sn_platform.inference.predictor import preprocess_record
from sn_platform.models.factory import build_module
from sn_platform.tracking import load_segmenter_at
from sn_platform.training.assembly import run_spec
from sn_platform.training.checks import check_run
from sn_platform.training.engine import read_checkpoint
from sn_platform.training.run import initial_model, train_and_evaluate
from sn_platform.training.spec import RunContext
from tests.data.sessions import into_sessions

pytestmark = pytest.mark.slow


def compose_training(root: Path, work: Path, *overrides: str, store: str | None = None):
    """The smoke experiment on ``root`` with its checkpoints in ``work`` and its MLflow store
    there too, unless ``store`` names another."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[
                "experiment=smoke",
                f"data.root={root}",
                f"tracking.uri={store or f'sqlite:///{work}/mlflow.db'}",
                f"tracking.artifact_location={work}/mlruns",
                f"trainer.checkpoint_dir={work}/checkpoints",
                *overrides,
            ],
        )


@pytest.fixture(scope="module")
def smoke_run(two_site_cohort, tmp_path_factory):
    work = tmp_path_factory.mktemp("smoke")
    cfg = compose_training(two_site_cohort, work, "trainer.calibrate_thresholds=true")
    outcome = train_and_evaluate(run_spec(cfg))
    mlflow.set_tracking_uri(cfg.tracking.uri)
    return cfg, outcome, mlflow.MlflowClient()


def test_smoke_run_is_fully_tracked(smoke_run):
    _, outcome, client = smoke_run
    runs = client.search_runs([client.get_experiment_by_name("sn-platform").experiment_id])
    assert [r.info.run_id for r in runs] == [outcome.run_id]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["model.depth"] == "3" and run.data.params["trainer.max_epochs"] == "3"
    assert run.data.tags["sn.fold"] == "0" and len(run.data.tags["sn.dataset_fingerprint"]) == 16
    history = client.get_metric_history(run.info.run_id, "val/dsc")
    assert [m.step for m in history] == [1, 2, 3]
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 3
    logged = ("val/hd95_mm", "val/nm_ratio_pearson_r", "val/chi_mean_pearson_r", "best/val/dsc",
              "calibration/threshold_RN")  # fmt: skip
    for key in logged:
        assert key in run.data.metrics
    evaluation = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {
        f"evaluation/val_{n}"
        for n in (
            "subjects.tsv",
            "agreement.json",
            "scatter.png",
            "bland_altman.png",
            "overlays.png",
        )
    } <= evaluation
    config = {a.path for a in client.list_artifacts(run.info.run_id, "config")}
    assert "config/config.yaml" in config and "config/preprocessing.json" in config
    table = client.download_artifacts(run.info.run_id, "evaluation/val_subjects.tsv")
    lines = Path(table).read_text().splitlines()
    assert len(lines) == 1 + 4  # 8 subjects, 2 folds, no test split in the smoke experiment
    assert "dsc_truth" in lines[0] and "nm_volume_ratio_manual" in lines[0]


def test_logged_model_reproduces_the_validation_dsc_in_a_fresh_process(smoke_run):
    cfg, outcome, client = smoke_run
    logged = client.get_run(outcome.run_id).data.metrics["best/val/dsc"]
    script = f"""
import json, mlflow
import numpy as np
from sn_platform.data.bids import discover_subjects
from sn_platform.data.roi import mask_centre
from sn_platform.inference.predictor import preprocess_record
from sn_platform.data.splits import Splits
from sn_platform.evaluation.subject import load_reference_case, evaluate_case
from sn_platform.inference.localise import localise
from sn_platform.tracking import load_segmenter
mlflow.set_tracking_uri({cfg.tracking.uri!r})
segmenter = load_segmenter("runs:/{outcome.run_id}/model")
splits = Splits.from_json(open({cfg.data.splits.file!r}).read())
wanted = splits.fold(0)[1]
scores = []
for record in discover_subjects({cfg.data.root!r}, subjects=wanted, labels=("SN", "RN", "CC")):
    case = load_reference_case(record)
    # No localiser here: like validation, the box is centred on the manual labels.
    centre = mask_centre(np.logical_or.reduce(list(case.manual.values())), case.affine)
    subject = preprocess_record(record, segmenter.spec, None, centre)
    prediction = segmenter.predict_preprocessed(subject, case.image.shape, case.affine)
    found = localise(prediction, segmenter.settings)
    row = evaluate_case(case, found.masks, found.slab, rule=segmenter.settings.slab_rule)
    scores.append(row["dsc"])
print(json.dumps(sum(scores) / len(scores)))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == pytest.approx(logged, abs=1e-4)


class Killed(Exception):
    pass


def test_resume_continues_at_epoch_three_with_identical_weights(two_site_cohort, tmp_path):
    tiny = [
        "data.patch_size=[32,32,3]", "data.samples_per_volume=2", "trainer.max_epochs=4",
        "data.preprocessing.spacing_mm=[1.0,1.0,2.0]",  # the mechanics, in seconds
    ]  # fmt: skip
    whole = compose_training(two_site_cohort, tmp_path / "whole", *tiny)
    train_and_evaluate(run_spec(whole))

    def kill_after_second(metrics, epoch):
        if epoch == 2:
            raise Killed

    split = compose_training(two_site_cohort, tmp_path / "split", *tiny)
    with pytest.raises(Killed):
        train_and_evaluate(run_spec(split), RunContext(report=kill_after_second))
    epochs = []
    resumed = compose_training(two_site_cohort, tmp_path / "split", *tiny, "trainer.resume=true")
    outcome = train_and_evaluate(
        run_spec(resumed), RunContext(report=lambda m, e: epochs.append(e))
    )
    assert epochs == [3, 4]
    expected = read_checkpoint(tmp_path / "whole" / "checkpoints")["model"]
    got = read_checkpoint(tmp_path / "split" / "checkpoints")["model"]
    for name, value in expected.items():
        assert torch.equal(value, got[name]), name
    # The resumed run continued the same MLflow run: one run, every epoch logged once.
    mlflow.set_tracking_uri(resumed.tracking.uri)
    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("sn-platform").experiment_id])
    assert [r.info.run_id for r in runs] == [outcome.run_id]
    steps = [m.step for m in client.get_metric_history(outcome.run_id, "train/loss")]
    assert steps == [1, 2, 3, 4]


def test_calibrated_thresholds_are_the_best_of_the_grid_on_validation_and_travel_with_the_model(
    smoke_run,
):
    cfg, outcome, _ = smoke_run
    labels = ("SN", "RN", "CC")
    chosen = {n: outcome.metrics[f"calibration/threshold_{n}"] for n in labels}
    segmenter = load_segmenter_at(outcome.model_uri, cfg.tracking.uri)
    assert [segmenter.settings.threshold_of(n) for n in labels] == list(chosen.values())
    # Independently: whole-volume DSC of each grid threshold on the fold's validation
    # subjects, the box centred on their drawn labels; the chosen one scores best.
    splits = Splits.from_json(Path(cfg.data.splits.file).read_text())
    scores = {n: np.zeros(len(THRESHOLD_GRID)) for n in labels}
    records = discover_subjects(cfg.data.root, subjects=splits.fold(0)[1], labels=labels)
    for record in records:
        case = load_reference_case(record)
        centre = mask_centre(np.logical_or.reduce(list(case.manual.values())), case.affine)
        subject = preprocess_record(record, segmenter.spec, None, centre)
        prediction = segmenter.predict_preprocessed(subject, case.image.shape, case.affine)
        for n in labels:
            scores[n] += [
                dice(prediction.probability(n) > t, case.manual[n]) for t in THRESHOLD_GRID
            ]
    for n in labels:
        assert scores[n][THRESHOLD_GRID.index(chosen[n])] == pytest.approx(scores[n].max()), n


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=-0.001", "optim.lr: invalid -0.001"),
        ("data.patch_size=[512,512,3]", "voxels, smaller than the patch [512, 512, 3]"),
        ("trainer.fold=7", "trainer.fold: 7 not in 0..1"),
        ("inference.patch_overlap=[3,0,0]", "inference.patch_overlap: must be three even sizes"),
    ],
)
def test_invalid_settings_are_refused_before_data_is_read(
    two_site_cohort, tmp_path, override, message
):
    cfg = compose_training(two_site_cohort, tmp_path, override)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        check_run(run_spec(cfg))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model=vnet_huge", "sn-train: model: unknown option 'vnet_huge'; choose from vnet_"),
        ("optim.lr=-1", "sn-train: optim.lr: invalid -1.0"),
    ],
)
def test_command_line_errors_are_one_line(tmp_path, override, message):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from sn_platform.cli import train; train()",
            f"data.root={tmp_path}",
            override,
            f"hydra.run.dir={tmp_path}/out",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message)
    assert not (tmp_path / "mlruns").exists()


def _fine_tuning(smoke_run, root: Path, work: Path, *overrides: str):
    """A smoke run in ``work`` that starts from ``smoke_run``'s logged model (same store)."""
    cfg, outcome, _ = smoke_run
    return compose_training(
        root, work, f"trainer.init_from={outcome.model_uri}", "run_name=fine-tuned", *overrides,
        store=cfg.tracking.uri,
    )  # fmt: skip


def test_fine_tuning_starts_exactly_from_the_logged_weights(smoke_run, two_site_cohort, tmp_path):
    tuned = _fine_tuning(smoke_run, two_site_cohort, tmp_path, "trainer.max_epochs=1")
    spec = run_spec(tuned, load_segmenter_at)
    logged = {k: v.cpu() for k, v in spec.initial.model.state_dict().items()}
    start = initial_model(spec).state_dict()
    fresh = build_module(spec.model).state_dict()
    assert start.keys() == logged.keys()
    assert all(torch.equal(start[k], logged[k]) for k in logged)
    assert any(not torch.equal(start[k], fresh[k]) for k in fresh)
    tuned_outcome = train_and_evaluate(spec)
    assert tuned_outcome.progress.epoch == 1
    trained = torch.load(tuned_outcome.checkpoint_dir / "last.pt", weights_only=True)["model"]
    assert any(not torch.equal(trained[k], logged[k]) for k in logged)  # one epoch moved them


def test_fine_tuning_refuses_another_architecture_in_one_line(smoke_run, two_site_cohort, tmp_path):
    tuned = _fine_tuning(smoke_run, two_site_cohort, tmp_path, "model.base_filters=4")
    with pytest.raises(ConfigError, match=r"^trainer.init_from: .* is another architecture: ") as e:
        initial_model(run_spec(tuned, load_segmenter_at))
    assert "\n" not in str(e.value)
    channels = _fine_tuning(smoke_run, two_site_cohort, tmp_path, "data.channels=[echo-1,echo-2]")
    expected = r"reads channels \['echo-1', 'echo-2', 'echo-3'\], this run \['echo-1', 'echo-2'\]"
    with pytest.raises(ConfigError, match=expected):
        initial_model(run_spec(channels, load_segmenter_at))


def test_localiser_atlas_selects_the_registered_template(tmp_path):
    cfg = compose_training(tmp_path, tmp_path, "localiser=atlas")
    spec = run_spec(cfg)
    assert spec.localiser == AtlasLocaliser() and spec.localiser_uri == "atlas"


def test_a_patch_larger_than_a_sessions_volume_is_refused_naming_its_echo(
    two_site_cohort, tmp_path
):
    root = tmp_path / "longitudinal"
    shutil.copytree(two_site_cohort, root)
    into_sessions(root, "001", ("1", "2"))
    cfg = compose_training(
        root, tmp_path, "data.preprocessing.roi_mm=null", "data.patch_size=[512,512,3]"
    )
    message = (
        r"\[512, 512, 3\] is larger than the preprocessed volume \[\d+, \d+, \d+\] of "
        r"sub-001_ses-1_echo-1_part-mag_MEGRE\.nii\.gz"
    )
    with pytest.raises(ConfigError, match=message):
        check_run(run_spec(cfg))
