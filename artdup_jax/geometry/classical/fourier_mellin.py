"""Fourier–Mellin registration: a similarity (scale, rotation, translation) between whole compositions.

Each grey image is turned into its gradient magnitude (medium-independent contours), apodised, and placed
at the centre of a ``size`` x ``size`` canvas. The magnitudes of their Fourier spectra do not depend on
translation, and rotation / scaling of the image rotates / scales them, so after a log-polar resampling
(``cv2.warpPolar``) rotation and log-scale become shifts, found by phase correlation (``cv2.phaseCorrelate``).
The spectrum's symmetry leaves a 180° ambiguity: both angles are tried. The source is then rotated and
scaled and the translation found by a second phase correlation; the angle whose translation peak responds
more strongly wins.

Suited to copies of a whole composition (same subject, different framing or scale); a detail inside a
larger scene defeats it (spectra of different content). Returns source → target homographies in pixels.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from artdup_jax.geometry.classical import preprocess


@dataclasses.dataclass(frozen=True)
class FourierMellinConfig:
    size: int = 256  # canvas side; each image's longer side fills ``fill`` of it
    fill: float = 0.75  # leave room so that up-scaled content still fits the canvas
    sigma: float = 1.0  # blur before the gradient, px at canvas scale
    max_scale: float = 4.0  # scales beyond [1/max_scale, max_scale] are rejected


@dataclasses.dataclass
class FourierMellinResult:
    homography: np.ndarray | None  # (3, 3) similarity, source → target pixels; None if rejected
    scale: float
    angle_degrees: float  # cv2.getRotationMatrix2D's convention: positive turns the source anticlockwise on screen
    response: float  # translation phase-correlation peak in [0, 1]


def _canvas(grey: np.ndarray, config: FourierMellinConfig) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) grey → ((size, size) float32 apodised gradient canvas, (3, 3) image pixels → canvas pixels)."""
    hw = preprocess.resized_hw(grey.shape, round(config.size * config.fill))
    small = preprocess.resize(grey, hw)
    magnitude = preprocess.gradient_magnitude(small, config.sigma)
    magnitude = magnitude - magnitude.mean()
    window = np.outer(np.hanning(hw[0]), np.hanning(hw[1])).astype(np.float32)
    canvas = np.zeros((config.size, config.size), np.float32)
    top, left = (config.size - hw[0]) // 2, (config.size - hw[1]) // 2
    canvas[top: top + hw[0], left: left + hw[1]] = magnitude * window
    to_canvas = np.array([[1, 0, left], [0, 1, top], [0, 0, 1]], np.float64) @ preprocess.scale_matrix(grey.shape, hw)
    return canvas, to_canvas


def _log_polar_spectrum(canvas: np.ndarray) -> tuple[np.ndarray, float]:
    """High-passed log magnitude spectrum in log-polar form: ((angles, radii) float32, log-radius per column)."""
    n = canvas.shape[0]
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(canvas)))
    frequency = np.fft.fftshift(np.fft.fftfreq(n))
    # Reddy & Chatterji's high-pass: damps the lowest frequencies, which carry the canvas's frame, not content.
    cos_y, cos_x = np.cos(np.pi * frequency)[:, None], np.cos(np.pi * frequency)[None, :]
    high_pass = (1.0 - cos_y * cos_x) * (2.0 - cos_y * cos_x)
    spectrum = np.log1p(spectrum) * high_pass
    radius = n / 2.0
    polar = cv2.warpPolar(spectrum.astype(np.float32), (n, n), (n / 2.0, n / 2.0), radius,
                          cv2.INTER_LINEAR | cv2.WARP_POLAR_LOG)
    return polar[: n // 2], np.log(radius) / n  # spectra are symmetric: half a turn holds everything


def _similarity_about(centre: float, scale: float, angle_degrees: float) -> np.ndarray:
    """(3, 3) rotation by ``angle_degrees`` (cv2.getRotationMatrix2D's sign) and scaling about (centre, centre)."""
    return np.vstack([cv2.getRotationMatrix2D((centre, centre), angle_degrees, scale), [0, 0, 1]])


def fourier_mellin(source: np.ndarray, target: np.ndarray, config: FourierMellinConfig = FourierMellinConfig()
                   ) -> FourierMellinResult:
    """Source → target similarity. source, target: (H, W, 3) RGB or (H, W) grey, uint8 or float in [0, 1]."""
    grey_s, grey_t = preprocess.to_grey(source), preprocess.to_grey(target)
    canvas_s, to_canvas_s = _canvas(grey_s, config)
    canvas_t, to_canvas_t = _canvas(grey_t, config)
    polar_s, log_step = _log_polar_spectrum(canvas_s)
    polar_t, _ = _log_polar_spectrum(canvas_t)
    (shift_radius, shift_angle), _ = cv2.phaseCorrelate(polar_s, polar_t)
    # A feature at log-radius ρ in the source appears at ρ + shift in the target: frequencies grow by
    # exp(shift · step), i.e. the image shrinks by that factor. Angles: rows span 180°.
    scale = float(np.exp(-shift_radius * log_step))
    angle = float(-shift_angle * 180.0 / polar_s.shape[0])
    if not (1.0 / config.max_scale <= scale <= config.max_scale):
        return FourierMellinResult(None, scale, angle, 0.0)
    centre = (config.size - 1) / 2.0
    best = None
    for candidate_angle in (angle, angle + 180.0):
        rotate = _similarity_about(centre, scale, candidate_angle)
        rotated = cv2.warpAffine(canvas_s, rotate[:2], (config.size, config.size), flags=cv2.INTER_LINEAR)
        (dx, dy), response = cv2.phaseCorrelate(rotated, canvas_t)
        shift = np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], np.float64)
        if best is None or response > best[0]:
            best = (response, shift @ rotate, candidate_angle)
    response, canvas_H, best_angle = best
    H = np.linalg.inv(to_canvas_t) @ canvas_H @ to_canvas_s
    return FourierMellinResult(H / H[2, 2], scale, float((best_angle + 180.0) % 360.0 - 180.0), float(response))
