"""Synthetic copies with known homographies, built from real images: restyled, grey, cropped, rescaled,
rotated, painted, engraved (hatching on paper), blurred and negative copies.

``synthetic_copies()`` gives (name, source = the copy, target = the original, true (3, 3) source → target
pixels homography); ``alignment_error`` measures an estimate against the truth.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from PIL import Image

REFERENCE = "0_edinburgh_nat_gallery.jpg"


def unraphael_images() -> Path | None:
    """The folder of the ``unraphael`` package's Raphael copies (found without importing it), or None."""
    spec = importlib.util.find_spec("unraphael")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "data" / "images"
    return folder if (folder / REFERENCE).is_file() else None


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB (alpha dropped)."""
    return np.asarray(Image.open(path).convert("RGB"))


# ------------------------------------------------------------ geometry: original pixels → copy pixels


def _translation(tx, ty):
    return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], np.float64)


def _scaling(factor):
    return np.diag([factor, factor, 1.0])


def _similarity(hw, angle, scale):
    """About the centre of an (H, W) frame; cv2.getRotationMatrix2D's angle sign."""
    h, w = hw
    return np.vstack([cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale), [0, 0, 1]])


def _perspective(hw, moved):
    """Corners (clockwise from top-left) moved by ``moved`` (4, 2), in fractions of the width and height."""
    h, w = hw
    corners = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    return cv2.getPerspectiveTransform(corners, corners + np.float32(moved) * np.float32([w, h])).astype(np.float64)


def _quarter_turn(hw):
    """A quarter turn clockwise on screen, (x, y) → (h - 1 - y, x); the copy is (W, H)."""
    return np.array([[0, -1, hw[0] - 1], [1, 0, 0], [0, 0, 1]], np.float64), (hw[1], hw[0])


def _fraction(hw, f):
    return int(hw[0] * f), int(hw[1] * f)


GEOMETRIES = {  # name → (hw → (G, copy hw))
    "perspective": lambda hw: (_perspective(hw, [[0.05, 0.08], [-0.1, 0.02], [-0.04, -0.07], [0.08, -0.03]]), hw),
    "rotated 18° at 0.8": lambda hw: (_similarity(hw, 18, 0.8), hw),
    "detail x1.6": lambda hw: (_scaling(1.6) @ _translation(-hw[1] * 0.3, -hw[0] * 0.25), _fraction(hw, 0.6)),
    "rescaled 0.45, rotated -6°": lambda hw: (_similarity(_fraction(hw, 0.45), -6, 1.0) @ _scaling(0.45),
                                              _fraction(hw, 0.45)),
    "mild perspective": lambda hw: (_perspective(hw, [[0.03, 0], [0, 0.05], [-0.05, 0], [0, -0.02]]), hw),
    "rotated 12° at 0.9": lambda hw: (_similarity(hw, 12, 0.9), hw),
    "rotated -15° at 1.25": lambda hw: (_similarity(hw, -15, 1.25), hw),
    "perspective 2": lambda hw: (_perspective(hw, [[0, 0.06], [-0.06, 0], [0, -0.04], [0.07, 0]]), hw),
    "detail x1.4": lambda hw: (_scaling(1.4) @ _translation(-hw[1] * 0.2, -hw[0] * 0.15), _fraction(hw, 0.9)),
    "quarter turn": _quarter_turn,
}


# ------------------------------------------------------------------------------- media and palettes


def _grey(image):
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _as_rgb(grey):
    return np.repeat(np.clip(grey, 0, 1)[..., None], 3, -1).astype(np.float32)


def restyled(image, rng):
    """Colours permuted, a gamma and gains: another palette, the same drawing."""
    out = image[..., rng.permutation(3)] ** rng.uniform(0.6, 1.5) * rng.uniform(0.7, 1.1, 3)
    return np.clip(out, 0, 1).astype(np.float32)


def painted(image, rng):
    """Posterised flat colour areas after an edge-preserving blur (a stylised, painted copy)."""
    smooth = cv2.bilateralFilter(image, 9, 0.15, 7)
    return np.clip(np.round(restyled(smooth, rng) * 5) / 5, 0, 1).astype(np.float32)


def engraved(image, rng):
    """Dark hatching on warm paper: line density follows darkness, cross-hatching in the shadows, contours
    drawn, then slightly blurred (an engraving-like print)."""
    grey = cv2.GaussianBlur(_grey(image), (0, 0), 1.5)
    h, w = grey.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period, angle = max(4.0, max(h, w) / 140), np.radians(rng.uniform(30, 60))
    hatch = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    cross = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) - yy * np.sin(angle)) / period)
    darkness = 1.0 - grey
    ink = (hatch < darkness * 0.9) | ((darkness > 0.6) & (cross < darkness - 0.5))
    ink |= cv2.Canny((grey * 255).astype(np.uint8), 40, 100) > 0
    paper = cv2.GaussianBlur(np.where(ink, 0.1, 0.95).astype(np.float32), (0, 0), 0.8)
    return _as_rgb(paper) * np.float32([1.0, 0.95, 0.85])


def blurred_grey(image, rng):
    return _as_rgb(cv2.GaussianBlur(_grey(image), (0, 0), 2.5) + rng.normal(0, 0.03, image.shape[:2]))


def grey(image, rng):
    return _as_rgb(_grey(image))


def negative(image, rng):
    return _as_rgb(1.0 - _grey(image))


# ---------------------------------------------------------------------------------------- the group


@functools.cache
def _photo(name):
    image = getattr(skimage.data, name)()
    image = np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image[..., :3]
    return image.astype(np.float32) / 255.0


def _originals():
    """scikit-image photographs and two Raphael copies (700 px; other photographs if unraphael is absent)."""
    originals = {name: _photo(name) for name in ("astronaut", "coffee", "chelsea", "rocket", "camera")}
    folder = unraphael_images()
    for key, name, stand_in in (("london", "1_london_nat_gallery.jpg", "astronaut"),
                                ("nostrell", "5_uk_nostrell_priory.jpg", "coffee")):
        if folder is None:
            originals[key] = np.ascontiguousarray(_photo(stand_in)[:, ::-1])
            continue
        image = read_rgb(folder / name).astype(np.float32) / 255.0
        factor = 700 / max(image.shape[:2])
        originals[key] = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return originals


CASES = (  # (original, medium, geometry, background of the copy outside the original)
    ("astronaut", restyled, "perspective", 0.0),
    ("coffee", grey, "rotated 18° at 0.8", 0.0),
    ("chelsea", painted, "detail x1.6", 0.0),
    ("rocket", restyled, "rescaled 0.45, rotated -6°", 1.0),
    ("london", engraved, "mild perspective", 1.0),
    ("nostrell", painted, "rotated 12° at 0.9", 0.0),
    ("astronaut", blurred_grey, "rotated -15° at 1.25", 0.5),
    ("camera", negative, "perspective 2", 0.0),
    ("coffee", engraved, "detail x1.4", 1.0),
    ("london", grey, "quarter turn", 0.0),
)


def synthetic_copies(seed: int = 7):
    """Ten (name, source = copy (H, W, 3) float32, target = original (H, W, 3) float32, (3, 3) true source →
    target pixels homography). Each copy is the original under a known geometry G (original pixels → copy
    pixels) in another medium; the true alignment is G⁻¹."""
    rng = np.random.default_rng(seed)
    originals = _originals()
    out = []
    for k, (name, medium, geometry, background) in enumerate(CASES):
        original = originals[name]
        G, hw = GEOMETRIES[geometry](original.shape[:2])
        drawn = cv2.warpPerspective(original, G, (hw[1], hw[0]), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=(background,) * 3)
        out.append((f"{k}_{name}_{medium.__name__}_{geometry.replace(' ', '_')}", medium(drawn, rng), original,
                    np.linalg.inv(G)))
    return out


def alignment_error(H, H_true, source_hw, target_hw):
    """Largest distance (target px) between where H and H_true send a 9 x 9 grid of source points, over the
    points H_true sends inside the target frame."""
    h, w = source_hw
    xy = np.stack(np.meshgrid(np.linspace(0, w - 1, 9), np.linspace(0, h - 1, 9)), -1).reshape(-1, 1, 2)
    true = cv2.perspectiveTransform(xy, H_true).reshape(-1, 2)
    inside = (true[:, 0] >= 0) & (true[:, 0] <= target_hw[1] - 1) & (true[:, 1] >= 0) & (true[:, 1] <= target_hw[0] - 1)
    estimated = cv2.perspectiveTransform(xy, H).reshape(-1, 2)
    return float(np.max(np.linalg.norm(estimated - true, axis=1)[inside]))
