"""The localiser on synthetic contrasts: refused without tissue maps, one echo in the cascade."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from sn_platform.composition import CONFIG_DIR
from sn_platform.data.bids import DataValidationError, discover_subjects, dseg_path
from sn_platform.tracking import configure, load_segmenter
from sn_platform.training.assembly import run_spec
from sn_platform.training.run import train_and_evaluate
from tests.data.tissue_maps import linked_cohort


def test_a_synth_run_refuses_a_subject_without_a_tissue_map_in_one_line(phantom_cohort, tmp_path):
    root = linked_cohort(phantom_cohort[0], tmp_path / "cohort")  # channels and manual labels
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "experiment=localiser",
                f"data.root={root}",
                "data.splits.folds=2",
                "trainer.device=cpu",
                f"trainer.checkpoint_dir={tmp_path}/checkpoints",
                f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
            ],
        )
    with pytest.raises(DataValidationError) as info:
        train_and_evaluate(run_spec(cfg))
    first = sorted(p.name.removeprefix("sub-") for p in root.glob("sub-*"))[0]
    message = str(info.value)
    assert message.startswith(f"{dseg_path(root, first)}: missing tissue label map (dseg)")
    assert "\n" not in message
    assert not (tmp_path / "checkpoints").exists() and not (root / "splits_final.json").exists()


@pytest.mark.slow
def test_the_cascade_localiser_reads_echo_1_and_the_segmenter_all_three(
    registered_model, two_site_cohort
):
    # Tracking and registry both: an earlier test may have pointed the registry elsewhere.
    configure(registered_model)
    segmenter = load_segmenter("models:/sn-vnet@champion")
    localiser = segmenter.localiser
    assert localiser is not None and localiser.spec.channels == ("echo-1",)
    assert localiser.config["in_channels"] == 1 and segmenter.config["in_channels"] == 3
    assert segmenter.spec.channels == ("echo-1", "echo-2", "echo-3")
    record = discover_subjects(two_site_cohort, label_source=None)[0]
    assert segmenter.predict(record).roi_source in ("localiser", "centre")
