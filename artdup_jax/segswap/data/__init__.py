"""SegSwap's training data: synthetic co-segmentation pairs made by segment swapping, on the fly, in NumPy/OpenCV.

  source = make_source("unsupervised")                               # or coco / folder: objects and backgrounds
  styles = prepare_styles(bundled_paintings())                       # paintings for the stylisation
  example = make_example(index, seed=0, source=source, styles=styles, config=SynthesisConfig())
  # {"image_a", "image_b", "mask_a", "mask_b", "flow_a", "flow_b", "key_mask_b", "groups", ...}: ``signature``

Modules:
  config.py         ``SynthesisConfig`` (the generator's settings) and the blend modes
  segments.py       segment sources: COCO instances, image + label-map folders, Felzenszwalb regions
  placement.py      an object's A→B affine (aspect, rotation, scale, position) and the two-object layouts
  composer.py       the pair composer: image A and image B with the object(s) blended in
  stylisation.py    the classical stylisation and the AdaIN painting-styliser hook
  warps.py          thin-plate-spline warps of image B
  ground_truth.py   masks and flows on the feature grid, consistent between A and B
  examples.py       ``make_example`` (one example from (seed, index)), the hard-negative pool, ``signature``
"""

from artdup_jax.segswap.data.config import BLEND_MODES, SynthesisConfig
from artdup_jax.segswap.data.examples import make_example, pool_image, signature
from artdup_jax.segswap.data.segments import (
    CocoSegments,
    FolderSegments,
    Segment,
    SegmentSource,
    UnsupervisedSegments,
    bundled_images,
    bundled_paintings,
    felzenszwalb_segments,
    folder_images,
    make_source,
)
from artdup_jax.segswap.data.stylisation import STYLE_METHODS, StyleImage, prepare_styles

__all__ = [
    "BLEND_MODES",
    "STYLE_METHODS",
    "CocoSegments",
    "FolderSegments",
    "Segment",
    "SegmentSource",
    "StyleImage",
    "SynthesisConfig",
    "UnsupervisedSegments",
    "bundled_images",
    "bundled_paintings",
    "felzenszwalb_segments",
    "folder_images",
    "make_example",
    "make_source",
    "pool_image",
    "prepare_styles",
    "signature",
]
