"""Training and inference on CUDA (skipped without it): bf16 through torch.compile by
default, fed by the patch pipeline's persistent workers, and CUDA predictions that match
the CPU's."""

from __future__ import annotations

import pytest
import torch

from sn_platform.data.bids import discover_subjects
from sn_platform.data.loaders import prepared_subjects
from sn_platform.data.patches import PatchGroups, PatchPipeline
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.data.settings import DataSettings, SplitSettings
from sn_platform.devices import Runtime
from sn_platform.inference.predictor import InferenceSettings, predict_array
from sn_platform.models.losses import DiceLoss
from sn_platform.models.vnet import VNet
from sn_platform.seeding import seed_everything
from sn_platform.training.engine import LAST_CHECKPOINT, Trainer, read_checkpoint
from sn_platform.training.settings import TrainerSettings

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
LABELS = ("SN", "RN", "CC")
PATCH = (32, 32, 8)
SPEC = PreprocessingSpec(spacing_mm=(1.0, 1.0, 1.0), min_shape=PATCH, roi_mm=(48.0, 48.0, 16.0))


def _network() -> VNet:
    return VNet(3, len(LABELS) + 1, patch_size=PATCH, depth=3, base_filters=8, kernel_size=3,
                convs_per_stage=[1, 2, 2])  # fmt: skip


def test_cuda_trains_in_bf16_through_compile_from_persistent_workers(phantom_cohort, tmp_path):
    seed_everything(0)
    runtime = Runtime.resolve()
    assert (runtime.device.type, runtime.precision, runtime.compile) == ("cuda", "bf16", True)
    boxes = prepared_subjects(discover_subjects(phantom_cohort[0], labels=LABELS), SPEC, LABELS)
    data = DataSettings(
        root=None, preprocessing=SPEC, splits=SplitSettings(file="unused"), labels=LABELS,
        patch_size=PATCH, samples_per_volume=8, queue_length=32, batch_size=8, num_workers=2,
        label_probabilities={0: 0.3, 1: 0.35, 2: 0.2, 3: 0.15},
    )  # fmt: skip
    model = _network()
    trainer = Trainer(
        model, DiceLoss(), torch.optim.AdamW(model.parameters(), lr=3e-3), SPEC,
        TrainerSettings(max_epochs=6, progress=False), runtime, tmp_path,
    )  # fmt: skip
    losses = []
    with PatchPipeline(PatchGroups(boxes, SPEC, None, data, seed=0)) as epochs:
        trainer.fit(epochs, report=lambda metrics, epoch: losses.append(metrics["train/loss"]))
    assert len(losses) == 6 and losses[-1] < losses[0]
    weights = read_checkpoint(tmp_path)["model"]  # the plain module's, not the compiled one's
    assert set(weights) == set(model.state_dict()) and (tmp_path / LAST_CHECKPOINT).exists()
    assert all(w.dtype == torch.float32 for w in weights.values() if w.is_floating_point())


def test_cuda_predictions_match_the_cpus():
    torch.manual_seed(0)
    model = _network().eval()
    volume = torch.randn(3, 48, 48, 16)
    settings = InferenceSettings(labels=LABELS, patch_size=PATCH, patch_overlap=(16, 16, 4))
    cpu = predict_array(model, volume, settings, torch.device("cpu"))
    cuda = torch.device("cuda")
    fp32 = predict_array(model.to(cuda), volume, settings, cuda)
    bf16 = predict_array(model, volume, settings, cuda, "bf16")
    assert float((fp32 - cpu).abs().max()) < 2e-3
    assert float((bf16 - cpu).abs().max()) < 0.1
