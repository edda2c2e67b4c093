"""Physics of the simulated acquisition: multi-echo GRE magnitudes, bias field, QSM noise.

Signal per echo (PHANTOM.md): ``S_n = M0_eff * exp(-TE_n * R2*)`` with
``M0_eff = M0 * (1 - MT saturation)``, a smooth multiplicative bias field, a slice
profile, and complex Gaussian noise so that magnitudes are Rician.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

FloatArray = NDArray[np.float64]


def echo_signals(
    m0_eff: FloatArray, r2star_per_s: FloatArray, echo_times_ms: NDArray[np.float64]
) -> FloatArray:
    """Noise-free mono-exponential T2* decay.

    Parameters
    ----------
    m0_eff : (X, Y, Z) effective proton density after MT preparation (a.u.)
    r2star_per_s : (X, Y, Z) R2* in 1/s
    echo_times_ms : (E,) echo times in ms

    Returns
    -------
    (E, X, Y, Z) signal magnitudes (a.u.)
    """
    te_s = np.asarray(echo_times_ms, dtype=np.float64)[:, None, None, None] * 1e-3
    return m0_eff[None] * np.exp(-te_s * r2star_per_s[None])


def polynomial_bias_field(
    shape: tuple[int, int, int], order: int, amplitude: float, rng: np.random.Generator
) -> FloatArray:
    """Smooth multiplicative bias field ``exp(sum c_ijk x^i y^j z^k)`` (TorchIO's convention).

    The log-field is rescaled so that the field spans ``[1 - amplitude, 1 + amplitude]``
    at most (``amplitude`` 0.1-0.3 for +/-10-30 %).
    """
    axes = [np.linspace(-1.0, 1.0, n) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    log_field = np.zeros(shape)
    for i in range(order + 1):
        for j in range(order + 1 - i):
            for k in range(order + 1 - i - j):
                if i + j + k:
                    log_field += rng.uniform(-1.0, 1.0) * x**i * y**j * z**k
    peak = np.abs(log_field).max()
    if peak > 0:
        log_field *= np.log1p(amplitude) / peak
    return np.exp(log_field)


def smooth_noise(
    shape: tuple[int, ...], sigma_voxels: tuple[float, ...], sd: float, rng: np.random.Generator
) -> FloatArray:
    """Gaussian-filtered white noise rescaled to a standard deviation of ``sd``."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_voxels, mode="wrap")
    field_sd = field.std()
    return field * (sd / field_sd) if field_sd > 0 else field


def slice_profile_blur(
    signals: FloatArray, voxel_mm: tuple[float, float, float], slice_thickness_mm: float
) -> FloatArray:
    """Point-spread function: mild in-plane blur, through-plane by the slice thickness.

    ``signals`` is (E, X, Y, Z); returns the blurred array of the same shape.
    """
    through_plane = 0.4 * max(slice_thickness_mm / voxel_mm[2], 1.0)
    return ndimage.gaussian_filter(signals, (0.0, 0.4, 0.4, through_plane), mode="nearest")


def rician_magnitude(signals: FloatArray, noise_sd: float, rng: np.random.Generator) -> FloatArray:
    """Magnitude of the signal plus complex Gaussian noise (Rician statistics)."""
    real = signals + rng.normal(0.0, noise_sd, signals.shape)
    imaginary = rng.normal(0.0, noise_sd, signals.shape)
    return np.hypot(real, imaginary)


def qsm_streaks(
    shape: tuple[int, int, int],
    voxel_mm: tuple[float, float, float],
    amplitude_ppm: float,
    rng: np.random.Generator,
) -> FloatArray:
    """Mild streaking: stripes along the magic-angle cone of the dipole kernel (ppm)."""
    azimuth = rng.uniform(0.0, 2.0 * np.pi)
    polar = np.deg2rad(54.7)
    direction = np.array(
        [np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)]
    )
    normal = np.cross(direction, [0.0, 0.0, 1.0])
    normal /= np.linalg.norm(normal)
    grids = np.meshgrid(
        *[np.arange(n) * s for n, s in zip(shape, voxel_mm, strict=True)], indexing="ij"
    )
    projection = sum(g * n for g, n in zip(grids, normal, strict=True))
    bins = np.arange(np.floor(projection.min()), np.ceil(projection.max()) + 2.0, 0.5)
    profile = ndimage.gaussian_filter1d(rng.standard_normal(bins.size), 1.0)
    profile *= amplitude_ppm / max(profile.std(), 1e-12)
    stripes = np.interp(projection, bins, profile)
    envelope = smooth_noise(shape, (6.0, 6.0, 3.0), 1.0, rng)
    return stripes * np.abs(envelope)
