"""The demo's collection: unraphael's copies of Raphael's *Bridgewater Madonna*, scikit-image's photographs,
planted duplicates (a photograph warped by a homography with a colour change; a crop of it pasted into a
texture) and one truncated JPEG, written to a folder with the planted groups returned as ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from artdup_jax.data import outputs
from artdup_jax.data.embedded import EMBEDDED_NAMES, embedded_images
from artdup_jax.data.images import read_image

REFERENCE = "0_edinburgh_nat_gallery.jpg"
QUICK_COPIES = ("1_london_nat_gallery.jpg", "4_oxford_ashmolean.jpg", "6_oxford_christ_church.jpg")
QUICK_PHOTOS = ("astronaut", "chelsea", "coffee")
# (photo, texture it is pasted into): each planted group is the photo, a warped copy and a pasted crop.
PLANTED = (("chelsea", "brick"), ("rocket", "grass"), ("astronaut", "gravel"))


def unraphael_folder() -> Path:
    """The folder of the ``unraphael`` package's copies of the Bridgewater Madonna."""
    try:
        import unraphael
    except ImportError:
        raise FileNotFoundError("the demo needs the 'unraphael' package (its images); run scripts/setup") from None
    folder = Path(unraphael.__file__).parent / "data" / "images"
    if not (folder / REFERENCE).is_file():
        raise FileNotFoundError(f"{folder / REFERENCE} is missing; reinstall unraphael==0.2.1 (scripts/setup)")
    return folder


def _save_downscaled(path: Path, pixels: np.ndarray, size: int) -> None:
    """uint8 or float RGB saved with its longer side at most ``size``."""
    image = Image.fromarray(pixels if pixels.dtype == np.uint8 else outputs.to_uint8(pixels))
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    image.save(path, quality=92)


def _warped(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photograph under a random perspective (corners moved up to 12%) and a colour change."""
    import cv2

    h, w = photo.shape[:2]
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = corners + rng.uniform(-0.12, 0.12, (4, 2)).astype(np.float32) * np.float32([w, h])
    warped = cv2.warpPerspective(photo, cv2.getPerspectiveTransform(corners, moved), (w, h),
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    gains = rng.uniform(0.8, 1.15, 3)
    return np.clip((warped / 255.0) ** rng.uniform(0.8, 1.2) * gains, 0, 1)


def _pasted(photo: np.ndarray, texture_name: str, rng: np.random.Generator) -> np.ndarray:
    """A central crop (half of each side) of the photograph pasted at a random place into a texture."""
    import skimage.data

    texture = np.asarray(getattr(skimage.data, texture_name)(), np.float32) / 255.0
    texture = np.repeat(texture[..., None], 3, -1) if texture.ndim == 2 else texture[..., :3]
    h, w = photo.shape[:2]
    crop = photo[h // 4: h // 4 + h // 2, w // 4: w // 4 + w // 2].astype(np.float32) / 255.0
    scale = min(0.6 * texture.shape[0] / crop.shape[0], 0.6 * texture.shape[1] / crop.shape[1])
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    crop = np.asarray(Image.fromarray(outputs.to_uint8(crop)).resize(size, Image.Resampling.LANCZOS)) / 255.0
    top = int(rng.integers(0, texture.shape[0] - crop.shape[0] + 1))
    left = int(rng.integers(0, texture.shape[1] - crop.shape[1] + 1))
    texture[top: top + crop.shape[0], left: left + crop.shape[1]] = crop
    return texture


def build_collection(folder: Path, copies_folder: Path, copies: list[str], photos: list[str],
                     planted: list[tuple[str, str]], size: int, seed: int) -> list[list[str]]:
    """Writes the mixed collection into ``folder``; returns the planted groups (file names)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    by_name = dict(zip(EMBEDDED_NAMES, embedded_images()))
    truth = [[]]
    for name in copies:
        target = f"copy_{Path(name).stem}.jpg"
        _save_downscaled(folder / target, outputs.to_uint8(read_image(copies_folder / name)), size)
        truth[0].append(target)
    for name in photos:
        _save_downscaled(folder / f"photo_{name}.jpg", by_name[name], size)
    for name, texture in planted:
        files = [f"photo_{name}.jpg", f"photo_{name}_warped.jpg", f"photo_{name}_pasted_in_{texture}.jpg"]
        if name not in photos:
            _save_downscaled(folder / files[0], by_name[name], size)
        _save_downscaled(folder / files[1], _warped(by_name[name], rng), size)
        _save_downscaled(folder / files[2], _pasted(by_name[name], texture, rng), size)
        truth.append(files)
    # An unreadable input, to show how one is reported: the first 40% of a JPEG.
    data = (folder / truth[-1][0]).read_bytes()
    (folder / "broken_truncated_scan.jpg").write_bytes(data[: int(0.4 * len(data))])
    return [sorted(t) for t in truth if len(t) >= 2]
