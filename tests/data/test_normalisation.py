"""A box's normalisation fitted once and applied to its patches equals the spec's TorchIO
normalisation of the whole box, cut afterwards."""

from __future__ import annotations

import pytest
import torch
import torchio as tio

from sn_platform.data.normalisation import BoxNormalisation
from sn_platform.data.preprocessing import PreprocessingSpec


@pytest.mark.parametrize("method", ["zscore", "percentile"])
def test_patches_normalised_with_the_boxs_statistics_equal_the_normalised_box(method):
    spec = PreprocessingSpec(channels=("echo-1",), normalization=method)
    generator = torch.Generator().manual_seed(0)
    box = torch.rand(1, 20, 18, 6, generator=generator) ** 3 * 500  # skewed magnitudes
    whole = spec.intensity_transform()(tio.Subject(echo1=tio.ScalarImage(tensor=box)))
    expected = whole["echo1"].data[:, 3:11, 5:13, 1:5]
    normalise = BoxNormalisation.fit(box, method)
    got = normalise(box[:, 3:11, 5:13, 1:5])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_zscore_and_percentile_by_hand():
    box = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]).view(1, 5, 1, 1)
    zscore = BoxNormalisation.fit(box, "zscore")
    assert (zscore.shift, zscore.scale, zscore.bounds) == (2.0, pytest.approx(2.5**0.5), None)
    percentile = BoxNormalisation.fit(box, "percentile")
    # numpy's linear percentiles of 0..4: 0.5 % -> 0.02, 99.5 % -> 3.98
    assert percentile.bounds == pytest.approx((0.02, 3.98))
    values = percentile(torch.tensor([-1.0, 0.02, 2.0, 9.0])).tolist()
    assert values == pytest.approx([0.0, 0.0, 0.5, 1.0])


def test_a_constant_echo_is_refused_by_zscore_and_kept_by_percentile():
    box = torch.full((1, 4, 4, 2), 7.0)
    with pytest.raises(ValueError, match="constant"):
        BoxNormalisation.fit(box, "zscore")
    assert torch.equal(BoxNormalisation.fit(box, "percentile")(box), box)
    with pytest.raises(ValueError, match="normalization must be"):
        BoxNormalisation.fit(box, "minmax")
