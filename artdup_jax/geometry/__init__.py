"""Geometry primitives: grid sampling, resizing, homographies (see ransac_flow.md §0).

Coordinates are NHWC / channels-last; in every grid or point array channel 0 is x (column) and
channel 1 is y (row). Normalised coordinates lie in [-1, 1].

| Name      | pixel index i (size n) <-> normalised g / resize source position | Where                         |
|-----------|------------------------------------------------------------------|-------------------------------|
| AC        | g = 2i/(n-1) - 1                       (``align_corners=True``)   | identity & warp grids,        |
|           |                                                                  | grid_sample, homography_grid  |
| PC / HP   | g = 2(i+0.5)/n - 1                     (``align_corners=False``)  | feature-cell centres          |
|           | resize: out i reads (i+0.5)·n_in/n_out - 0.5, clamped            | (``cell_centres``), torch's   |
|           |                                                                  | default bilinear resize       |
| AC-resize | resize: out i reads i·(n_in-1)/(n_out-1)                         | ``resize_bilinear(...,        |
|           |                                                                  | align_corners=True)``         |
| PIL       | nearest: int((i+0.5)·n_in/n_out); bilinear: antialiased triangle | ``resize_pil``                |

Pixel coordinates put the centre of pixel i at i (as OpenCV). Modules: ``sampling`` (grid_sample,
identity grids, conversions), ``resize`` (torch / PIL resizes), ``homography`` (apply, warp grid,
normalisation changes, DLT fits).
"""
