"""What TorchIO lacks for our augmentation, TorchIO style: a random transform samples, a
deterministic one applies.

Rician noise: magnitude images carry Rician, not Gaussian, noise: the noise is added to the
complex signal (real and imaginary parts), and the magnitude is taken. All echoes of a
subject share one noise SD, as in a real acquisition, and it is set relative to the
subject's bright signal (99th percentile of the brightest echo), so it means the same at
any intensity scale.

Synthetic contrasts (SynthSeg, Billot et al. 2023): every echo rendered from the tissue
label map (``TISSUES_KEY``) with a random intensity per class, so a network learns the
anatomy rather than one protocol's grey levels (``conf/augment/synth.yaml``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, cast

import torch
import torchio as tio
from torchio.transforms.augmentation.random_transform import RandomTransform

from sn_platform.data.preprocessing import TISSUES_KEY


def quantile(values: torch.Tensor, q: float) -> float:
    """``torch.quantile(values, q)`` of a 1-D tensor (linear interpolation), from two order
    statistics (``kthvalue``) instead of a sort: the same value, several times faster."""
    rank = torch.tensor(q, dtype=values.dtype) * (len(values) - 1)
    below, above = int(rank.floor()), int(rank.ceil())
    low, high = values.kthvalue(below + 1).values, values.kthvalue(above + 1).values
    return float(torch.lerp(low, high, rank - below))


def _reference_intensity(subject: tio.Subject, names: list[str]) -> float:
    images = [cast(tio.Image, subject[n]) for n in names]
    levels = [quantile(image.data.float().flatten()[::7], 0.99) for image in images]
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
        # The subject is already this call's copy (or the caller's, to change in place).
        arguments: dict[str, Any] = {**self._get_base_args(), "copy": False}
        transformed = RicianNoise(std=std, seed=seeds, **arguments)(subject)
        assert isinstance(transformed, tio.Subject)
        return transformed


class RandomLabelsToEchoes(RandomTransform, tio.IntensityTransform):
    """TorchIO's ``RandomLabelsToImage`` for every echo: each echo (each intensity image the
    transform includes) is replaced by an image rendered from the tissue label map
    (``TISSUES_KEY``), each echo with its own random contrast.

    Parameters
    ----------
    default_mean : range of each class's mean intensity (arbitrary units; the normalisation
        removes the scale)
    default_std : range of each class's within-class SD (same units)
    ignore_background : leave class 0 (air) at 0, as a magnitude image's air is (its noise
        floor comes from the Rician noise)
    shared_probability : probability that every echo gets the first echo's rendering: one
        contrast given as every channel, as a single-echo scan reaches a multi-echo model
    """

    label_key = TISSUES_KEY

    def __init__(
        self,
        default_mean: tuple[float, float] = (0.1, 0.9),
        default_std: tuple[float, float] = (0.01, 0.1),
        ignore_background: bool = True,
        shared_probability: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= shared_probability <= 1.0:
            raise ValueError(f"shared_probability must be in [0, 1], got {shared_probability}")
        self.default_mean = (float(default_mean[0]), float(default_mean[1]))
        self.default_std = (float(default_std[0]), float(default_std[1]))
        self.ignore_background = ignore_background
        self.shared_probability = float(shared_probability)

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        # The subject is already this call's copy: the renderings work on it in place.
        arguments: dict[str, Any] = {**self._get_base_args(), "copy": False}
        names = list(self.get_images_dict(subject))
        shared = bool(torch.rand(1).item() < self.shared_probability)
        for name in names[:1] if shared else names:
            render = tio.RandomLabelsToImage(
                label_key=TISSUES_KEY,
                image_key=name,
                default_mean=self.default_mean,
                default_std=self.default_std,
                ignore_background=self.ignore_background,
                **arguments,
            )
            subject = cast(tio.Subject, render(subject))
        if shared:
            first = cast(tio.Image, subject[names[0]])
            for name in names[1:]:
                cast(tio.Image, subject[name]).set_data(first.data.clone())
        return subject


def _parts(transform: tio.Transform | None) -> Iterator[tio.Transform]:
    """``transform`` and every transform it composes (``Compose``, ``OneOf``), depth first."""
    if transform is None:
        return
    yield transform
    if isinstance(transform, tio.Compose):
        children = list(transform.transforms)
    elif isinstance(transform, tio.OneOf):
        children = list(transform.transforms_dict)
    else:
        children = []
    for child in children:
        yield from _parts(child)


def reads_tissues(transform: tio.Transform | None) -> bool:
    """Whether ``transform``, or a transform it composes, renders images from the tissue
    label map (its ``label_key`` is ``TISSUES_KEY``): then the subjects need one."""
    return any(getattr(part, "label_key", None) == TISSUES_KEY for part in _parts(transform))


def in_place(transform: tio.Transform) -> tio.Transform:
    """A copy of ``transform`` whose every part changes the subject it is given instead of
    copying it first (TorchIO's ``copy=False``): for a caller that hands it a copy of its
    own, one copy of the subject instead of one per transform."""
    changed = copy.deepcopy(transform)
    for part in _parts(changed):
        part.copy = False
    return changed
