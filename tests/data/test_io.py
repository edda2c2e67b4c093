"""Writing NIfTI volumes: integer storage of float images (as scanners store magnitudes)."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from sn_platform.data.bids import load_volume
from sn_platform.data.io import write_nifti


def test_a_magnitude_stored_as_int16_reads_back_within_one_quantisation_step(tmp_path):
    rng = np.random.default_rng(0)
    magnitude = np.abs(rng.normal(300.0, 40.0, (40, 30, 12))).astype(np.float32)
    magnitude[0, 0, 0] = 2000.0  # a bright vessel sets the scale
    affine = np.diag([0.5, 0.5, 1.0, 1.0])
    as_float, as_int16 = tmp_path / "float.nii.gz", tmp_path / "int16.nii.gz"
    write_nifti(as_float, magnitude, affine)
    write_nifti(as_int16, magnitude, affine, stored_as=np.int16)

    image = nib.load(as_int16)
    assert image.get_data_dtype() == np.int16
    # nibabel's slope and intercept spread the range over all 65536 values of int16.
    read, geometry = load_volume(as_int16)
    step = float(image.dataobj.slope)
    assert 0.0 < step <= 2000.0 / 65535
    np.testing.assert_allclose(read, magnitude, rtol=0.0, atol=step / 2 * 1.01)
    np.testing.assert_array_equal(geometry.affine, affine)
    assert as_int16.stat().st_size < 0.7 * as_float.stat().st_size
