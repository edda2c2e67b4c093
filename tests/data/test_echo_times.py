"""Echo-time augmentation: a monoexponential decay moved to another protocol's echo times
equals the decay imaged at them; the fit's slope equals numpy's least squares; the QSM map,
a single echo and rising voxels are left alone; random draws stay in their ranges."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio as tio
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from sn_platform.composition import CONFIG_DIR
from sn_platform.data.echo_times import EchoTimeShift, RandomEchoTimes, echo_log_slope

SHAPE = (1, 10, 9, 6)


def _decay(echo_times_ms: list[float], seed: int = 0) -> tio.Subject:
    """Echoes ``M0 * exp(-TE * R2*)``, R2* 10-90 Hz, M0 1-2, and a random QSM map."""
    generator = torch.Generator().manual_seed(seed)
    m0 = 1.0 + torch.rand(SHAPE, generator=generator, dtype=torch.float64)
    r2_star_per_ms = 0.01 + 0.08 * torch.rand(SHAPE, generator=generator, dtype=torch.float64)
    images = {
        f"echo{n}": tio.ScalarImage(tensor=(m0 * torch.exp(-te * r2_star_per_ms)).float())
        for n, te in enumerate(echo_times_ms, start=1)
    }
    chimap = tio.ScalarImage(tensor=torch.randn(SHAPE, generator=generator))
    return tio.Subject(**images, Chimap=chimap)


@pytest.mark.parametrize(
    ("source_ms", "target_ms"),
    [
        ([7.5, 15.0, 22.5], [5.5, 12.0, 18.5]),  # site A -> the unseen protocol U
        ([6.0, 14.0, 22.0], [9.0, 18.0, 27.0]),  # site B -> later, wider echoes
        ([5.0, 11.5, 18.0, 24.5], [5.0, 11.5, 18.0, 24.5]),  # four echoes, unchanged
    ],
)
def test_a_decay_moved_to_new_echo_times_equals_the_decay_imaged_there(source_ms, target_ms):
    spacing = source_ms[1] - source_ms[0]
    shift = (target_ms[0] - source_ms[0]) / spacing
    factor = (target_ms[1] - target_ms[0]) / spacing
    moved = EchoTimeShift(shift=shift, factor=factor)(_decay(source_ms))
    imaged = _decay(target_ms)
    for key in [f"echo{n}" for n in range(1, len(source_ms) + 1)]:
        torch.testing.assert_close(moved[key].data, imaged[key].data, rtol=1e-5, atol=1e-6)
    assert torch.equal(moved["Chimap"].data, imaged["Chimap"].data)


def test_the_slope_is_numpys_least_squares_fit_of_the_log_signal():
    generator = np.random.default_rng(3)
    echoes = generator.uniform(0.05, 2.0, size=(3, 4, 5, 2))
    numbers = np.array([1.0, 2.0, 4.0])  # echoes 1, 2 and 4 of a sequence
    expected = np.polyfit(numbers, np.log(echoes).reshape(3, -1), 1)[0].reshape(4, 5, 2)
    slope = echo_log_slope(torch.from_numpy(echoes), torch.from_numpy(numbers))
    np.testing.assert_allclose(slope.numpy(), np.clip(expected, -3.0, 0.0), atol=1e-9)


def test_identity_and_what_is_left_alone():
    generator = torch.Generator().manual_seed(2)
    noisy = tio.Subject(
        echo1=tio.ScalarImage(tensor=torch.rand(SHAPE, generator=generator) + 0.5),
        echo2=tio.ScalarImage(tensor=torch.rand(SHAPE, generator=generator) + 0.5),
        echo3=tio.ScalarImage(tensor=torch.rand(SHAPE, generator=generator) + 0.5),
    )
    unchanged = EchoTimeShift(shift=0.0, factor=1.0)(noisy)
    for key in ("echo1", "echo2", "echo3"):
        torch.testing.assert_close(unchanged[key].data, noisy[key].data)
    rising = tio.Subject(
        echo1=tio.ScalarImage(tensor=torch.full(SHAPE, 1.0)),
        echo2=tio.ScalarImage(tensor=torch.full(SHAPE, 2.0)),
    )
    moved = EchoTimeShift(shift=0.3, factor=1.2)(rising)
    assert torch.equal(moved["echo2"].data, rising["echo2"].data)  # no decay: no change
    single = tio.Subject(echo1=tio.ScalarImage(tensor=torch.full(SHAPE, 3.0)))
    moved_single = EchoTimeShift(shift=0.3, factor=1.2)(single)
    assert torch.equal(moved_single["echo1"].data, single["echo1"].data)
    with pytest.raises(ValueError, match="factor must be > 0"):
        EchoTimeShift(shift=0.0, factor=0.0)


def test_random_echo_times_stay_in_their_ranges_and_replay():
    source_ms = [7.5, 15.0, 22.5]
    torch.manual_seed(5)
    for _ in range(20):
        subject = _decay(source_ms)
        moved = RandomEchoTimes(shift=(-0.4, 0.4), factor=(0.75, 1.3))(subject)
        (arguments,) = [t for t in moved.history if t.name == "EchoTimeShift"]
        shift, factor = float(arguments.shift), float(arguments.factor)
        assert -0.4 <= shift <= 0.4 and 0.75 <= factor <= 1.3
        first_ms = source_ms[0] + shift * 7.5  # 7.5 ms: the source's echo spacing
        imaged = _decay([first_ms + factor * 7.5 * k for k in range(3)])
        torch.testing.assert_close(moved["echo3"].data, imaged["echo3"].data, rtol=1e-5, atol=1e-6)
        replayed = moved.get_composed_history()(_decay(source_ms))
        assert torch.equal(replayed["echo2"].data, moved["echo2"].data)


def test_the_protocol_preset_draws_echo_times_on_magnitudes_only():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        preset = instantiate(compose(config_name="config", overrides=["augment=protocol"]).augment)
    names = [type(t).__name__ for t in preset.transforms]
    assert "RandomEchoTimes" in names
    torch.manual_seed(0)
    subject = _decay([7.5, 15.0, 22.5])
    augmented = preset(subject)
    assert torch.equal(augmented["Chimap"].data.flip(1), subject["Chimap"].data) or torch.equal(
        augmented["Chimap"].data, subject["Chimap"].data
    )
