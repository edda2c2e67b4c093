"""Rician noise, TorchIO style: a random transform samples, a deterministic one applies.

Magnitude images carry Rician, not Gaussian, noise: the noise is added to the complex
signal (real and imaginary parts), and the magnitude is taken. All echoes of a subject
share one noise SD, as in a real acquisition, and it is set relative to the subject's
bright signal (99th percentile of the brightest echo), so it means the same at any
intensity scale.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torchio as tio
from torchio.transforms.augmentation.random_transform import RandomTransform


def _reference_intensity(subject: tio.Subject, names: list[str]) -> float:
    images = [cast(tio.Image, subject[n]) for n in names]
    levels = [torch.quantile(image.data.float().flatten()[::7], 0.99).item() for image in images]
    return max(max(levels), 1e-12)


class RicianNoise(tio.IntensityTransform):
    """Add Rician noise of SD ``std`` times the subject's bright signal, with fixed seeds.

    Parameters
    ----------
    std : noise SD as a fraction of the 99th percentile of the brightest image
    seed : seed of the noise, one per image name or one for all
    """

    def __init__(self, std: float, seed: int | dict[str, int], **kwargs: Any):
        super().__init__(**kwargs)
        if std < 0:
            raise ValueError(f"std must be >= 0, got {std}")
        self.std = std
        self.seed = seed
        self.args_names = ["std", "seed"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        images = self.get_images_dict(subject)
        if not images:
            return subject
        noise_sd = self.std * _reference_intensity(subject, list(images))
        for name, image in images.items():
            seed = self.seed[name] if isinstance(self.seed, dict) else self.seed
            generator = torch.Generator().manual_seed(int(seed))
            data = image.data.float()
            real = data + noise_sd * torch.randn(data.shape, generator=generator)
            imaginary = noise_sd * torch.randn(data.shape, generator=generator)
            image.set_data(torch.hypot(real, imaginary))
        return subject


class RandomRicianNoise(RandomTransform, tio.IntensityTransform):
    """Rician noise with an SD drawn uniformly from ``std`` (fraction of the bright signal)."""

    def __init__(self, std: float | tuple[float, float] = (0.0, 0.05), **kwargs: Any):
        super().__init__(**kwargs)
        self.std_range = self._parse_range(std, "std", min_constraint=0)

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        images = self.get_images_dict(subject)
        if not images:
            return subject
        std = self.sample_uniform(*self.std_range)
        seeds = {name: self._get_random_seed() for name in images}
        transformed = RicianNoise(std=std, seed=seeds, **self._get_base_args())(subject)
        assert isinstance(transformed, tio.Subject)
        return transformed
