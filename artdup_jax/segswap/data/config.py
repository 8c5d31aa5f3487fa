"""The settings of the synthetic pair generator (``SynthesisConfig``) and its blend modes."""

from __future__ import annotations

import dataclasses

BLEND_MODES = ("copy", "blur", "poisson")  # hard-alpha paste, Gaussian-blurred alpha, Poisson (seamlessClone)


@dataclasses.dataclass(frozen=True)
class SynthesisConfig:
    """The generator's settings; defaults are the paper's (480² images, 30² grid)."""

    image_size: int = 480
    stride: int = 16
    two_object_probability: float = 0.5  # the 1-object or the 2-object set, uniformly
    dilation: int = 20  # iterations of 3×3-cross dilation for a 640-px source, scaled with its size
    border_crop_probability: float = 0.2
    aspect: tuple[float, float] = (0.7, 1.0)  # width and height factors, independently
    max_rotation: float = 15.0  # degrees, symmetric
    max_scale_change: float = 0.0  # > 0: the object's A→B scale is kept within [1/m, m] (easy smoke pairs; 0: free)
    one_object_scales: tuple[float, float] = (0.2, 1.0)
    two_object_scales: tuple[float, float] = (0.5, 1.0)
    blend_modes: tuple[str, ...] = ("poisson",)  # the released generators only use Poisson
    stylise_probability: float = 0.5  # per image
    tps_probability: float = 0.5
    tps_grid_sizes: tuple[int, ...] = (4, 6)
    region_mask_probability: float = 0.5
    min_mask_cells: float = 9.0  # reject below this mask sum on a 30² grid (1 % of the cells); scaled with g²
    max_tries: int = 100

    def __post_init__(self):
        if self.image_size % self.stride:
            raise ValueError(f"image_size {self.image_size} is not a multiple of the stride {self.stride}")
        unknown = set(self.blend_modes) - set(BLEND_MODES)
        if unknown or not self.blend_modes:
            raise ValueError(f"blend_modes {self.blend_modes}: choose among {BLEND_MODES}")

    @property
    def grid(self) -> int:
        return self.image_size // self.stride

    @property
    def min_mask_sum(self) -> float:
        return self.min_mask_cells * (self.grid / 30) ** 2

