"""Physics of the simulated acquisition: multi-echo GRE magnitudes, bias field, QSM noise.

Signal per echo (PHANTOM.md): ``S_n = M0_eff * exp(-TE_n * R2*)`` with
``M0_eff = M0 * (1 - MT saturation)``, a smooth multiplicative bias field, a slice
profile, and complex Gaussian noise so that magnitudes are Rician.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from sn_platform.phantom.arrays import Float32Array


def polynomial_bias_field(
    shape: tuple[int, int, int], order: int, amplitude: float, rng: np.random.Generator
) -> Float32Array:
    """Smooth multiplicative bias field ``exp(sum c_ijk x^i y^j z^k)`` (TorchIO's convention).

    The log-field is rescaled so that the field spans ``[1 - amplitude, 1 + amplitude]``
    at most (``amplitude`` 0.1-0.3 for +/-10-30 %). It is summed as ``sum_i x^i P_i(y, z)``,
    so a large grid costs ``order + 1`` full-volume passes.
    """
    x, y, z = (np.linspace(-1.0, 1.0, n) for n in shape)
    planes = np.zeros((order + 1, shape[1], shape[2]))
    for i in range(order + 1):
        for j in range(order + 1 - i):
            for k in range(order + 1 - i - j):
                if i + j + k:
                    planes[i] += rng.uniform(-1.0, 1.0) * np.outer(y**j, z**k)
    log_field = np.zeros(shape, np.float32)
    for i, plane in enumerate(planes):
        log_field += (x[:, None, None] ** i).astype(np.float32) * plane[None].astype(np.float32)
    peak = float(np.abs(log_field).max())
    if peak > 0:
        log_field *= np.log1p(amplitude) / peak
    return np.exp(log_field, out=log_field)


def smooth_noise(
    shape: tuple[int, ...], sigma_voxels: tuple[float, ...], sd: float, rng: np.random.Generator
) -> Float32Array:
    """Gaussian-filtered white noise rescaled to a standard deviation of ``sd`` (float32)."""
    white = rng.standard_normal(shape, dtype=np.float32)
    field = ndimage.gaussian_filter(white, sigma_voxels, output=white, mode="wrap")
    field_sd = float(field.std())
    if field_sd > 0:
        field *= sd / field_sd
    return np.asarray(field, dtype=np.float32)


def slice_profile_blur(
    signal: NDArray[np.floating],
    voxel_mm: tuple[float, float, float],
    slice_thickness_mm: float,
    out: NDArray[np.floating] | None = None,
) -> NDArray[np.floating]:
    """Point-spread function: mild in-plane blur, through-plane by the slice thickness.

    ``signal`` is one echo (X, Y, Z); returns the blurred array of the same shape (in
    ``out`` when given).
    """
    through_plane = 0.4 * max(slice_thickness_mm / voxel_mm[2], 1.0)
    return np.asarray(
        ndimage.gaussian_filter(signal, (0.4, 0.4, through_plane), output=out, mode="nearest")
    )


def rician_magnitude(
    signals: NDArray[np.floating], noise_sd: float, rng: np.random.Generator
) -> NDArray[np.float32]:
    """Magnitude of the signal plus complex Gaussian noise (Rician statistics), float32."""
    real = rng.standard_normal(signals.shape, dtype=np.float32)
    real *= noise_sd
    real += signals
    imaginary = rng.standard_normal(signals.shape, dtype=np.float32)
    imaginary *= noise_sd
    # |z| by hand: half the time of np.hypot, and magnitudes here cannot overflow.
    real *= real
    imaginary *= imaginary
    real += imaginary
    return np.sqrt(real, out=real)


def qsm_streaks(
    shape: tuple[int, int, int],
    voxel_mm: tuple[float, float, float],
    amplitude_ppm: float,
    rng: np.random.Generator,
) -> Float32Array:
    """Mild streaking: stripes along the magic-angle cone of the dipole kernel (ppm).

    The stripes run parallel to B0 (z), so they vary in-plane only; a smooth random
    envelope makes them come and go: the magnitude of the sum of an in-plane and a
    through-plane field, one pass over the volume. The result has SD ``amplitude_ppm``.
    """
    azimuth = rng.uniform(0.0, 2.0 * np.pi)
    polar = np.deg2rad(54.7)
    direction = np.array(
        [np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)]
    )
    normal = np.cross(direction, [0.0, 0.0, 1.0])
    normal /= np.linalg.norm(normal)
    x, y = (np.arange(n) * s for n, s in zip(shape[:2], voxel_mm[:2], strict=True))
    projection = normal[0] * x[:, None] + normal[1] * y[None, :]
    bins = np.arange(np.floor(projection.min()), np.ceil(projection.max()) + 2.0, 0.5)
    profile = ndimage.gaussian_filter1d(rng.standard_normal(bins.size), 1.0)
    stripes = np.interp(projection, bins, profile).astype(np.float32)
    in_plane = smooth_noise(shape[:2], (6.0, 6.0), 1.0, rng)
    through_plane = smooth_noise(shape[2:], (3.0,), 1.0, rng)
    streaks = np.abs(in_plane[:, :, None] + through_plane[None, None, :])
    streaks *= stripes[:, :, None]
    streaks *= amplitude_ppm / max(float(streaks.std()), 1e-12)
    return streaks
