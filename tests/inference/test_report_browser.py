"""The QC report in a real browser (headless Chromium): it loads, every image loads, and
nothing overflows a 1280-pixel window; a screenshot is kept as a test artifact."""

from __future__ import annotations

from sn_platform.inference.batch import local_engine, write_reports
from tests.browser import chromium_page
from tests.inference.tiny_bids import tiny_job, tiny_segmenter, write_participants, write_subject

WIDTH = 1280
SUBJECTS = ["01", "02", "03"]


def test_the_report_reads_well_at_1280_pixels(tmp_path):
    root, output = tmp_path / "bids", tmp_path / "out"
    for number, participant in enumerate(SUBJECTS):
        write_subject(root, participant, seed=number)
    write_participants(root, SUBJECTS)
    results = local_engine([tiny_segmenter()], tiny_job(root, output))(SUBJECTS)
    rows, errors = write_reports(output, results, ["models:/tiny@champion"], root)
    assert len(rows) == 3 and not errors
    with chromium_page(width=WIDTH, height=900) as page:
        page.goto((output / "index.html").as_uri())
        page.wait_for_selector("section#sub-01")
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.getAttribute('src'), e.complete && e.naturalWidth])"
        )
        assert len(images) == len(SUBJECTS) + 1  # every QC panel and the effect sizes
        assert all(width for _, width in images), images
        page.evaluate("window.scrollTo(0, 0)")
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= WIDTH, f"page is {overflow} px wide"
        assert page.inner_text("h2") == "Cohort"
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
