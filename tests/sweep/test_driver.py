"""Real sweeps on CPU: local Ray + SQLite, a 2-node cluster + mlflow server, Optuna; the
interrupted sweeps are in ``test_resume``."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from sn_platform import tracking
from sn_platform.composition import CONFIG_DIR
from sn_platform.evaluation.thresholds import THRESHOLD_GRID
from sn_platform.sweep.driver import run_sweep

pytestmark = pytest.mark.slow
TINY = [
    "experiment=smoke",
    "tune=demo",
    "data.patch_size=[32,32,3]",
    "data.samples_per_volume=2",
    "trainer.max_epochs=2",
    # The default's final model, a refit (the demo's fold ensemble: the Optuna test below).
    "tune.final=refit",
    # The sweep's mechanics, not accuracy: 1 x 1 x 2 mm voxels keep every trial in seconds.
    "data.preprocessing.spacing_mm=[1.0,1.0,2.0]",
    # Two epochs leave the RN and the measures too unsettled for ICC: select by DSC alone
    # (a dict override merges into the demo's selection, so it is replaced).
    "~tune.selection",
    "+tune.selection={val/dsc:1.0}",
    # ... and crown one although its RN and CC are not learnt yet (no DSC floor).
    "tune.min_structure_dsc=null",
]


def sweep_overrides(root: Path, work: Path, *extra: str) -> list[str]:
    return [
        *TINY,
        f"data.root={root}",
        f"tune.storage_path={work}/ray_results",
        f"tracking.uri=sqlite:///{work}/mlflow.db",
        f"tracking.artifact_location={work}/mlruns",
        *extra,
    ]


def compose_sweep(overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="sweep", overrides=overrides)


def runs_of(uri: str) -> tuple[list, list]:
    """(parent runs, child runs) of the sn-platform experiment."""
    tracking.configure(uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("sn-platform")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("sn.kind") == "sweep"]
    children = [r for r in runs if tracking.PARENT_TAG in r.data.tags]
    return parents, children


@pytest.fixture(autouse=True)
def _no_stray_ray():
    yield
    import ray

    ray.shutdown()


def test_cross_validated_sweep_registers_a_champion_that_predicts(tiny_sweep):
    outcome = tiny_sweep.outcome
    parents, children = runs_of(f"sqlite:///{tiny_sweep.work}/mlflow.db")
    assert [p.info.run_id for p in parents] == [outcome.parent_run_id]
    trials = [c for c in children if c.data.tags.get("sn.config_id")]
    assert sorted((c.data.tags["sn.config_id"], c.data.tags["sn.fold"]) for c in trials) == [
        ("c00", "0"), ("c00", "1"), ("c01", "0"), ("c01", "1"),
    ]  # fmt: skip
    client = mlflow.MlflowClient()
    for trial in trials:
        assert trial.data.tags[tracking.PARENT_TAG] == outcome.parent_run_id
        steps = [m.step for m in client.get_metric_history(trial.info.run_id, "val/dsc")]
        assert steps == [1, 2]
    refit = [c for c in children if c.data.tags.get(tracking.RUN_KEY_TAG) == "refit"]
    assert len(refit) == 1 and refit[0].data.tags["sn.fold"] == "all"
    artifacts = {a.path for a in client.list_artifacts(outcome.parent_run_id, "leaderboard")}
    assert artifacts == {"leaderboard/leaderboard.tsv", "leaderboard/selection.png"}
    assert [e["config_id"] for e in outcome.leaderboard] != []
    assert all(e["complete"] for e in outcome.leaderboard)
    assert outcome.leaderboard[0]["score"] >= outcome.leaderboard[1]["score"]
    version = client.get_model_version_by_alias("sn-vnet", "champion")
    assert str(version.version) == outcome.model_version
    assert version.tags["config_id"] == outcome.leaderboard[0]["config_id"]
    best = outcome.leaderboard[0]
    assert float(version.tags["cv.dsc"]) == pytest.approx(best["oof/dsc"], rel=1e-3)
    assert {"cv.score", "cv.dsc", "cv.slab_within_one"} <= set(version.tags)
    assert not [k for k in version.tags if "/" in k]  # key figures, not the full table
    assert "Champion of sweep demo" in version.description
    assert "| SN DSC in the slab |" in version.description
    model = mlflow.pyfunc.load_model("models:/sn-vnet@champion")
    probabilities = model.predict(np.zeros((1, 3, 32, 32, 3), dtype=np.float32))
    assert probabilities.shape == (1, 3, 32, 32, 3)  # SN, RN and CC
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_sweep_on_a_two_node_cluster_logs_through_an_mlflow_server(two_site_cohort, tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        with tracking.local_server(f"sqlite:///{tmp_path}/server.db", str(tmp_path / "art")) as url:
            overrides = sweep_overrides(
                two_site_cohort, tmp_path, f"ray.address={cluster.address}",
                "tracking=server", f"tracking.uri={url}",
                f"tracking.artifact_location={tmp_path}/art",
            )  # fmt: skip
            outcome = run_sweep(compose_sweep(overrides), overrides)
            _, children = runs_of(url)
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()
    trials = [c for c in children if c.data.tags.get("sn.config_id")]
    assert len(trials) == 4
    assert len({c.data.tags["sn.node_id"] for c in trials}) == 2
    assert all("val/dsc" in c.data.metrics for c in trials)
    assert outcome.model_version == "1"


def test_optuna_search_runs_every_fold_inside_each_trial_and_registers_a_fold_ensemble(
    two_site_cohort, tmp_path
):
    overrides = sweep_overrides(
        two_site_cohort, tmp_path, "ray.num_cpus=2", "tune.search_alg=optuna",
        "tune.scheduler=none", "tune.num_samples=2", "tune/space=default",
        "tune.final=ensemble", "data.splits.file=${data.root}/splits_ensemble.json",
        "data.splits.test_fraction=0.25", "trainer.calibrate_thresholds=true",
    )  # fmt: skip
    outcome = run_sweep(compose_sweep(overrides), overrides)
    _, children = runs_of(f"sqlite:///{tmp_path}/mlflow.db")
    trials = [c for c in children if c.data.tags.get("sn.config_id")]
    by_config: dict[str, set[str]] = {}
    for trial in trials:
        by_config.setdefault(trial.data.tags["sn.config_id"], set()).add(trial.data.tags["sn.fold"])
    assert list(by_config.values()) == [{"0", "1"}, {"0", "1"}]
    assert len(outcome.leaderboard) == 2 and all(e["complete"] for e in outcome.leaderboard)
    assert {"optim.lr", "loss", "model.base_filters"} <= set(outcome.leaderboard[0])
    # The final model: the winner's two fold models, averaged.
    assert outcome.refit_metrics["ensemble/members"] == 2.0
    assert "best/test/dsc" in outcome.refit_metrics
    assert [c.data.tags[tracking.RUN_KEY_TAG] for c in children].count("ensemble") == 1
    version = mlflow.MlflowClient().get_model_version_by_alias("sn-vnet", "champion")
    assert version.tags["final_model"] == "ensemble of 2 folds"
    assert version.tags["config_id"] == outcome.leaderboard[0]["config_id"]
    segmenter = tracking.load_segmenter("models:/sn-vnet@champion")
    assert len(segmenter.model.members) == 2
    # Its thresholds, chosen out of fold (each member on the subjects its fold held out).
    for label in ("SN", "RN", "CC"):
        chosen = outcome.refit_metrics[f"calibration/threshold_{label}"]
        assert chosen in THRESHOLD_GRID and segmenter.settings.threshold_of(label) == chosen
    probabilities = mlflow.pyfunc.load_model("models:/sn-vnet@champion").predict(
        np.zeros((1, 3, 32, 32, 3), dtype=np.float32)
    )
    assert probabilities.shape == (1, 3, 32, 32, 3)  # SN, RN and CC


def test_an_ensemble_without_a_test_split_is_refused_before_the_splits_are_written(
    two_site_cohort, tmp_path
):
    from sn_platform.errors import ConfigError
    from sn_platform.sweep.driver import prepare

    splits = tmp_path / "splits.json"
    overrides = sweep_overrides(
        two_site_cohort, tmp_path, "tune.final=ensemble", f"data.splits.file={splits}"
    )
    with pytest.raises(ConfigError) as info:
        prepare(compose_sweep(overrides))
    assert str(info.value) == (
        "tune.final=ensemble: the fold ensemble is evaluated on the test split, and "
        "data.splits.test_fraction is 0.0; give data.splits.test_fraction > 0, or "
        "tune.final=refit"
    )
    assert not splits.exists()
