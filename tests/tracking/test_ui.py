"""The MLflow UI as its users see it, in a real browser on a real ``mlflow server``: the
experiment opens on its training runs, the sweep's parent with its children, the
compared metrics as columns (the view saved in the experiment), the dataset, a chart of
two children's ``val/dsc``, and the parent's description linking to its children.
Screenshots are kept in the test's folder."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from sn_platform import tracking
from tests.browser import chromium_page

pytestmark = pytest.mark.slow
CHILDREN = ("c00-fold0", "c00-fold1")


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
