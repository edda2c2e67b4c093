"""The MLflow UI as its users see it, in a real browser on a real ``mlflow server``: the
experiment opens on its training runs, the sweep's parent with its children, the
compared metrics as columns (the view saved in the experiment), the dataset, a chart of
two children's ``val/dsc``, and the parent's description linking to its children; the
registered champion's version page with its key figures in one screen. Screenshots are
kept in the test's folder."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from sn_platform import tracking
from sn_platform.tracking.key_figures import KEY_FIGURES
from tests.browser import chromium_page

pytestmark = pytest.mark.slow
CHILDREN = ("c00-fold0", "c00-fold1")
WINDOW = (1400, 900)  # pixels
CHAMPION_METRICS = {
    "oof/dsc": 0.812, "oof/dsc_sd": 0.031, "oof/slab_within_one": 0.95,
    "oof/nm_ratio_pearson_r": 0.93, "oof/nm_ratio_icc": 0.91, "oof/chi_mean_pearson_r": 0.98,
    "oof/chi_mean_icc": 0.97, "best/test/dsc": 0.826, "best/test/nm_ratio_pearson_r": 0.94,
    "best/test/chi_mean_icc": 0.975,
}  # fmt: skip


class _Constant(mlflow.pyfunc.PythonModel):
    """A stand-in model: the page shows the version, not what it predicts."""

    def predict(self, context, model_input):
        return model_input


def _small_sweep(work: Path) -> tuple[str, str]:
    """A parent run and two children logged as ``sn-sweep`` logs them; (store, parent id)."""
    store = f"sqlite:///{work}/mlflow.db"
    tracking.configure(store)
    parent = tracking.RunLogger.start(
        "sn-platform", "sweep-ui", {"sn.kind": "sweep"}, str(work / "mlruns")
    )
    for offset, name in enumerate(CHILDREN):
        child = tracking.RunLogger.start("sn-platform", name, parent_run_id=parent.run_id)
        tracking.log_dataset(child.run_id, work / "phantom", "0123456789abcdef", {"train": 6})
        for epoch in range(6):
            dsc = 0.3 + 0.1 * epoch + 0.05 * offset
            child.log_metrics(
                {"val/dsc": dsc, "train/loss": 1 - dsc, "val/hd95_mm": 9 - epoch}, epoch
            )
        child.finish()
    tracking.link_children(parent.run_id, tracking.COMPARED_METRICS, "Runs of this sweep")
    parent.finish()
    return store, parent.run_id


def test_the_experiment_opens_on_the_training_runs_with_their_metrics_and_charts(tmp_path):
    store, parent_id = _small_sweep(tmp_path)
    experiment = mlflow.MlflowClient().get_run(parent_id).info.experiment_id
    shots = tmp_path / "screenshots"
    # Wide enough that the grid renders every compared column (it virtualises the rest).
    server = tracking.local_server(store, str(tmp_path / "mlruns"))
    with server as url, chromium_page(width=2200) as page:
        page.goto(f"{url}/{tracking.runs_page(experiment)}", timeout=120_000)
        page.wait_for_selector("text=sweep-ui", timeout=120_000)
        close_assistant = page.get_by_role("button", name="Close")  # a third of the window
        if close_assistant.count():
            close_assistant.first.click()
        page.locator("[role=row]", has_text="sweep-ui").locator("button").first.click()
        for name in CHILDREN:  # nested under the parent
            page.locator("[role=row]", has_text=name).wait_for(timeout=30_000)
        datasets = page.get_by_text("phantom (0123456789abcdef)")  # name (digest) per child
        datasets.last.wait_for(timeout=30_000)
        assert datasets.count() == len(CHILDREN)
        for metric in ("val/dsc", "val/hd95_mm", "train/loss"):  # the saved view's columns
            header = page.get_by_role("columnheader", name=metric, exact=True)
            header.first.wait_for(timeout=30_000)
        page.screenshot(path=shots / "runs-table.png", full_page=True)

        # The chart view: one chart per metric, a line per visible run (only the children
        # have val/dsc).
        page.locator("input[type=radio][value=CHART]").evaluate("radio => radio.click()")
        page.get_by_text("val/dsc", exact=True).first.wait_for(timeout=60_000)
        page.locator("svg.main-svg").first.wait_for(timeout=60_000)
        page.screenshot(path=shots / "charts-val-dsc.png", full_page=True)

        run_page = f"#/experiments/{experiment}/runs/{parent_id}?workflowType=machine_learning"
        page.goto(f"{url}/{run_page}", timeout=60_000)
        # Linked from the run's description and from its "Child runs" field.
        link = page.get_by_role("link", name=CHILDREN[1]).first
        link.wait_for(timeout=60_000)
        page.screenshot(path=shots / "parent-run.png", full_page=True)
        assert "/runs/" in (link.get_attribute("href") or "")
    for shot in sorted(shots.iterdir()):
        print(f"screenshot: {shot}")
        assert shot.stat().st_size > 10_000


def _registered_champion(work: Path) -> str:
    """A model version registered with the key figures and description the sweep gives its
    champion; the store."""
    store = f"sqlite:///{work}/mlflow.db"
    tracking.configure(store)
    run = tracking.RunLogger.start("sn-platform", "refit", artifact_location=str(work / "mlruns"))
    with mlflow.start_run(run_id=run.run_id):
        model = mlflow.pyfunc.log_model(name="model", python_model=_Constant(), pip_requirements=[])
    run.finish()
    figures = tracking.key_figures(CHAMPION_METRICS, {"cv": "oof/", "test": "best/test/"})
    tags = {"config_id": "c01", "param.optim.lr": "0.006", **tracking.key_figure_tags(figures)}
    description = "Champion of sweep demo: optim.lr=0.006.\n\n" + tracking.key_figure_table(figures)
    tracking.register(model.model_uri, "sn-vnet", "champion", tags, description)
    return store


def test_the_champion_version_page_shows_its_key_figures_in_one_screen(tmp_path):
    store = _registered_champion(tmp_path)
    width, height = WINDOW
    server = tracking.local_server(store, str(tmp_path / "mlruns"))
    with server as url, chromium_page(width, height) as page:
        page.goto(f"{url}/#/models/sn-vnet/versions/1", timeout=120_000)
        page.get_by_text("SN DSC in the slab").first.wait_for(timeout=120_000)
        close_assistant = page.get_by_role("button", name="Close")
        if close_assistant.count():
            close_assistant.first.click()
        page.screenshot(path=tmp_path / "champion-version.png")  # the first screen only
        # The description's table of key figures, whole, without scrolling; the tags begin.
        titles = [title for _, title in KEY_FIGURES]
        for text in (*titles, "0.826", "0.975", "cv.dsc"):
            box = page.get_by_text(text, exact=True).first.bounding_box()
            assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= height, text
    assert (tmp_path / "champion-version.png").stat().st_size > 10_000
