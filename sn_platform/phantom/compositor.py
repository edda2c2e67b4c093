"""Partial-volume compositing of tissues into echo signals and susceptibility.

Signals are relative to the crus cerebri on echo 1 (the NM-contrast reference); air is 0.
Tissues are painted front to back: a voxel's new signal moves towards the tissue's by the
tissue's partial-volume membership, so mixed voxels hold mixed signals (sums of
exponentials), not an exponential of mixed R2*. Each voxel also keeps a tissue class
(``TissueClass``): the last tissue painted over at least half of it, the label map that
training renders random contrasts from (SynthSeg).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from sn_platform.phantom.arrays import BoolArray, FloatArray
from sn_platform.phantom.regions import Box

# Signals and chi are stored in single precision: a whole head is tens of millions of values.
Values = NDArray[np.floating]

# Memberships below this are left out of painting: a logistic edge is at this level about
# 1.4 mm outside a structure (anatomy.EDGE_MM = 0.1 mm).
NEGLIGIBLE_MEMBERSHIP = 1e-6


class TissueClass(IntEnum):
    """Classes of the phantom's tissue label map (``dseg``); 0 is air (background)."""

    AIR = 0
    SCALP_SKULL = 1
    CSF = 2
    GREY_MATTER = 3
    WHITE_MATTER = 4
    BRAINSTEM = 5
    BLOOD_VESSEL = 6
    CEREBRAL_PEDUNCLE = 7
    SUBSTANTIA_NIGRA = 8
    RED_NUCLEUS = 9
    SUBTHALAMIC_NUCLEUS = 10


class Tissue(NamedTuple):
    """Echo-1 signal relative to the crus (MT-prepared), R2* (1/s), chi (ppm), its class."""

    echo1_contrast: float
    r2star_per_s: float
    chi_ppm: float
    tissue_class: TissueClass


class Canvas:
    """Echo signals (E, n) and chi (n,) ppm of the voxels of one box of the grid (the head).

    Everything outside the box is air (no signal, chi 0), so it need not be stored.
    ``box`` is the canvas's voxel box; arrays are float32, flattened in its C order.
    """

    def __init__(
        self, box: Box, echo_times_ms: FloatArray, first_echo_ms: float, crus_r2star: float
    ):
        self.box = box
        self.shape = tuple(part.stop - part.start for part in box)
        self.echo_times_ms = echo_times_ms
        self.first_echo_ms = first_echo_ms
        self.crus_r2star = crus_r2star
        self.signals = np.zeros((echo_times_ms.size, int(np.prod(self.shape))), np.float32)
        self.chi = np.zeros(int(np.prod(self.shape)), np.float32)
        self.classes = np.zeros(int(np.prod(self.shape)), np.uint8)

    def within(self, box: Box) -> Box | None:
        """The part of ``box`` (grid voxels) inside the canvas, or None if they do not meet."""
        parts = [
            slice(max(a.start, b.start), min(a.stop, b.stop))
            for a, b in zip(box, self.box, strict=True)
        ]
        if any(part.start >= part.stop for part in parts):
            return None
        return (parts[0], parts[1], parts[2])

    @contextmanager
    def painting(self, box: Box) -> Iterator[RegionPainter]:
        """A painter over the voxels of ``box`` (inside the canvas), written back on exit.

        A slab of whole y-z planes of the canvas is contiguous and painted in place; any
        other box through a copy.
        """
        x, y, z = box
        shape = tuple(part.stop - part.start for part in box)
        if (y, z) == self.box[1:]:
            plane = self.shape[1] * self.shape[2]
            start, stop = (
                (x.start - self.box[0].start) * plane,
                (x.stop - self.box[0].start) * plane,
            )
            yield self._painter(
                self.signals[:, start:stop], self.chi[start:stop], self.classes[start:stop]
            )
            return
        local = (slice(None), *self._local(box))
        signals = self.signals.reshape(-1, *self.shape)
        chi, classes = self.chi.reshape(self.shape), self.classes.reshape(self.shape)
        painter = self._painter(
            signals[local].reshape(signals.shape[0], -1),
            chi[local[1:]].ravel(),
            classes[local[1:]].ravel(),
        )
        yield painter
        signals[local] = painter.signals.reshape(-1, *shape)
        chi[local[1:]] = painter.chi.reshape(shape)
        classes[local[1:]] = painter.classes.reshape(shape)

    def chi_on_grid(self, grid_shape: tuple[int, int, int]) -> NDArray[np.float32]:
        """Chi (ppm) on the whole grid (X, Y, Z), 0 outside the canvas."""
        grid = np.zeros(grid_shape, np.float32)
        grid[self.box] = self.chi.reshape(self.shape)
        return grid

    def classes_on_grid(self, grid_shape: tuple[int, int, int]) -> NDArray[np.uint8]:
        """Tissue classes (``TissueClass``) on the whole grid (X, Y, Z), air outside."""
        grid = np.zeros(grid_shape, np.uint8)
        grid[self.box] = self.classes.reshape(self.shape)
        return grid

    def _local(self, box: Box) -> Box:
        a, b, c = (
            slice(part.start - own.start, part.stop - own.start)
            for part, own in zip(box, self.box, strict=True)
        )
        return (a, b, c)

    def _painter(self, signals: Values, chi: Values, classes: NDArray[np.uint8]) -> RegionPainter:
        return RegionPainter(
            signals, chi, classes, self.echo_times_ms, self.first_echo_ms, self.crus_r2star
        )


class RegionPainter:
    """Paints tissues into the flattened voxels of one region: signals (E, n), chi (n,)
    and tissue classes (n,)."""

    def __init__(
        self,
        signals: Values,
        chi: Values,
        classes: NDArray[np.uint8],
        echo_times_ms: FloatArray,
        first_echo_ms: float,
        crus_r2star: float,
    ):
        self.signals = signals
        self.chi = chi
        self.classes = classes
        self.echo_times_s = echo_times_ms[:, None] * 1e-3
        self.first_echo_s = first_echo_ms * 1e-3
        self.crus_r2star = crus_r2star
        self.sn_weight = np.zeros(chi.size)
        self._scratch: Values | None = None

    def paint_tissue(self, membership: FloatArray, tissue: Tissue) -> None:
        """Overlay one of the fixed tissues (``tissues``) with ``membership`` (n,)."""
        self.paint(
            membership,
            tissue.echo1_contrast,
            tissue.r2star_per_s,
            tissue.chi_ppm,
            tissue.tissue_class,
        )

    def paint(
        self,
        membership: FloatArray,
        echo1_contrast: FloatArray | float,
        r2star: FloatArray | float,
        chi: FloatArray | float,
        tissue_class: TissueClass,
        nigral: bool = False,
    ) -> None:
        """Overlay a tissue whose echo-1 signal is ``echo1_contrast`` times the crus's.

        ``membership`` (n,) in [0, 1]; the tissue values are scalars or (n,) arrays (R2* in
        1/s, chi in ppm); voxels it fills at least half of take its ``tissue_class``.
        ``nigral`` marks SN tissue, whose partial-volume weight is tracked for the chi
        calibration. Only voxels the tissue reaches are touched.
        """
        where = _support(membership)
        weight = membership[where]
        contrast, rate, susceptibility = (
            value[where] if isinstance(value, np.ndarray) else value
            for value in (echo1_contrast, r2star, chi)
        )
        m0_eff = contrast * np.exp(self.first_echo_s * (np.asarray(rate) - self.crus_r2star))
        tissue_signal = m0_eff * np.exp(-self.echo_times_s * rate)
        if isinstance(where, slice):
            # One scratch array per painter: fresh ones this size cost more in page
            # faults than the arithmetic.
            if self._scratch is None:
                self._scratch = np.empty_like(self.signals)
            change = np.subtract(tissue_signal, self.signals, out=self._scratch)
            change *= weight
            self.signals += change
        else:
            current = self.signals[:, where]
            self.signals[:, where] = current + weight * (tissue_signal - current)
        self.chi[where] += weight * (susceptibility - self.chi[where])
        classes = self.classes[where]
        classes[weight >= 0.5] = tissue_class
        self.classes[where] = classes
        self.sn_weight[where] += weight * (float(nigral) - self.sn_weight[where])

    def calibrate_sn_chi(self, sn: BoolArray, target_ppm: float) -> None:
        """Shift the nigral chi so that the mean over the SN label is ``target_ppm``.

        Partial volume with the crus and tegmentum would otherwise pull the measured mean
        below the tissue value; the figures in PHANTOM.md are measured means.
        """
        weight = self.sn_weight[sn].mean() if sn.any() else 0.0
        if weight > 0:
            self.chi += self.sn_weight * (target_ppm - self.chi[sn].mean()) / weight


def _support(membership: FloatArray) -> NDArray[np.intp] | slice:
    """Indices where ``membership`` matters, or every voxel when many of them do."""
    where = np.flatnonzero(membership > NEGLIGIBLE_MEMBERSHIP)
    return slice(None) if where.size > membership.size // 4 else where
