"""Rician noise: deterministic given its seed, Rayleigh-distributed on zero signal. The synth
preset: every echo rendered from the tissue map, a random intensity per class and seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio as tio
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

from sn_platform.composition import CONFIG_DIR
from sn_platform.data.augment import (
    RandomLabelsToEchoes,
    RandomRicianNoise,
    RicianNoise,
    in_place,
    quantile,
    reads_tissues,
)
from sn_platform.data.preprocessing import LABEL_KEY, TISSUES_KEY


def _subject(value: float) -> tio.Subject:
    data = torch.full((1, 40, 40, 40), value)
    data[0, 0, 0, 0] = 100.0  # sets the 99th-percentile reference only through the bright part
    bright = torch.full((1, 40, 40, 40), 100.0)
    return tio.Subject(echo1=tio.ScalarImage(tensor=bright), echo2=tio.ScalarImage(tensor=data))


@pytest.mark.parametrize("size", [1, 2, 100, 9363])
def test_the_noise_reference_quantile_equals_torchs(size):
    for seed in range(5):
        values = torch.rand(size, generator=torch.Generator().manual_seed(seed)) * 1000
        assert quantile(values, 0.99) == torch.quantile(values, 0.99).item()
    assert quantile(torch.tensor([3.0, 1.0, 2.0, 4.0]), 0.5) == 2.5


def test_rician_noise_on_zero_signal_is_rayleigh():
    noisy = RicianNoise(std=0.1, seed=3)(_subject(0.0))
    values = noisy["echo2"].data.flatten()[1:].numpy()
    sigma = 0.1 * 100.0
    assert values.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.02)
    assert (values >= 0).all()


def test_random_rician_noise_replays_from_history():
    torch.manual_seed(0)
    transformed = RandomRicianNoise(std=(0.01, 0.05))(_subject(50.0))
    replayed = transformed.get_composed_history()(_subject(50.0))
    assert torch.equal(transformed["echo2"].data, replayed["echo2"].data)
    assert not torch.equal(transformed["echo1"].data, transformed["echo2"].data)


def _preset(name: str = "synth") -> DictConfig:
    """The ``augment`` node of the composed config with the preset ``name``."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=[f"augment={name}"]).augment


def _tissue_subject() -> tio.Subject:
    """Air (0) around three blocks of classes 1, 2 and 3 (the SN, labelled 1), two echoes."""
    classes = torch.zeros(1, 24, 24, 8, dtype=torch.uint8)
    classes[0, 4:12, 4:20, 1:7] = 1
    classes[0, 12:20, 4:20, 1:7] = 2
    classes[0, 8:16, 8:16, 3:5] = 3
    rng = torch.Generator().manual_seed(1)
    return tio.Subject(
        echo1=tio.ScalarImage(tensor=100 * torch.rand(1, 24, 24, 8, generator=rng)),
        echo2=tio.ScalarImage(tensor=50 * torch.rand(1, 24, 24, 8, generator=rng)),
        label=tio.LabelMap(tensor=(classes == 3).to(torch.uint8)),
        tissues=tio.LabelMap(tensor=classes),
    )


def _class_statistics(subject: tio.Subject, key: str) -> tuple[list[float], list[float]]:
    image, classes = subject[key].data[0], subject[TISSUES_KEY].data[0]
    inside = [image[classes == c] for c in (1, 2, 3)]
    return [float(v.mean()) for v in inside], [float(v.std()) for v in inside]


def test_the_synth_preset_renders_every_echo_from_the_tissue_map():
    preset = instantiate(_preset())
    assert isinstance(preset, tio.Compose) and reads_tissues(preset)
    names = [type(t).__name__ for t in preset.transforms]
    assert names.index("RandomLabelsToEchoes") > names.index("RandomElasticDeformation")
    assert names.index("Clamp") < names.index("RandomGamma") < names.index("RandomRicianNoise")
    assert not any(reads_tissues(instantiate(_preset(n))) for n in ("none", "paper", "strong"))


def test_a_shared_rendering_gives_every_echo_the_first_echos_contrast():
    (node,) = [n for n in _preset().transforms if n._target_.endswith("LabelsToEchoes")]
    subject = _tissue_subject()
    torch.manual_seed(0)
    rendered = instantiate(node, p=1.0, shared_probability=1.0)(subject)
    assert torch.equal(rendered["echo1"].data, rendered["echo2"].data)
    mean, _ = _class_statistics(rendered, "echo1")
    assert np.ptp(mean[1:]) > 1e-3  # a rendering (classes differ), not a copy of the input
    with pytest.raises(ValueError, match="shared_probability"):
        RandomLabelsToEchoes(shared_probability=1.5)


def test_each_class_gets_a_homogeneous_random_intensity_per_echo_and_seed():
    (node,) = [n for n in _preset().transforms if n._target_.endswith("LabelsToEchoes")]
    assert node.p == 0.8 and node.shared_probability == 0.3
    render = instantiate(node, p=1.0, shared_probability=0.0)
    subject = _tissue_subject()
    means = {}
    for seed in (0, 1):
        torch.manual_seed(seed)
        rendered = render(subject)
        sampled = [t for t in rendered.history if t.name == "LabelsToImage"]
        assert [t.image_key for t in sampled] == ["echo1", "echo2"]
        for key, transform in zip(("echo1", "echo2"), sampled, strict=True):
            mean, sd = _class_statistics(rendered, key)
            # Classes 0 (air, left at 0), 1, 2 and 3: the sampled mean and SD (<= 0.1) of each.
            np.testing.assert_allclose(mean, transform.means[1:], atol=0.03)
            np.testing.assert_allclose(sd, transform.stds[1:], rtol=0.25)
            assert all(0.1 <= m <= 0.9 for m in transform.means) and max(sd) < 0.12
            assert bool((rendered[key].data[rendered[TISSUES_KEY].data == 0] == 0).all())
            means[seed, key] = mean
        assert torch.equal(rendered[LABEL_KEY].data, subject[LABEL_KEY].data)
        assert torch.equal(rendered[TISSUES_KEY].data, subject[TISSUES_KEY].data)
    # Another seed, another contrast; another echo, another contrast.
    for one, other in (((0, "echo1"), (1, "echo1")), ((0, "echo1"), (0, "echo2"))):
        assert np.abs(np.subtract(means[one], means[other])).min() > 1e-3


def test_the_synth_preset_moves_label_and_classes_together_and_keeps_magnitudes_positive():
    preset = instantiate(_preset())
    before_noise = tio.Compose(preset.transforms[:-1])
    assert isinstance(preset.transforms[-1], RandomRicianNoise)
    subject = _tissue_subject()
    for seed in range(4):
        torch.manual_seed(seed)
        augmented = preset(subject)
        torch.manual_seed(seed)
        noiseless = before_noise(subject)
        classes = augmented[TISSUES_KEY].data
        assert set(classes.unique().tolist()) <= {0, 1, 2, 3}
        assert torch.equal(augmented[LABEL_KEY].data == 1, classes == 3)
        for key in ("echo1", "echo2"):
            assert float(noiseless[key].data.min()) >= 0.0
            assert float(augmented[key].data.min()) >= 0.0


def test_in_place_augments_the_subject_given_and_leaves_the_configured_transform_alone():
    configured = tio.Compose(
        [tio.RandomFlip(axes=(0,), flip_probability=1.0), tio.OneOf([RandomRicianNoise()])]
    )
    changing = in_place(configured)
    subject = _subject(1.0)
    before = subject["echo1"].data.clone()
    assert changing(subject) is subject
    assert not torch.equal(subject["echo1"].data, before)  # noise on the subject itself
    original = _subject(1.0)
    configured(original)
    assert torch.equal(original["echo2"].data, _subject(1.0)["echo2"].data)  # copied first
    assert [t.copy for t in (configured, *configured.transforms)] == [True, True, True]
