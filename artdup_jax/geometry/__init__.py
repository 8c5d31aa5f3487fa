"""Geometry primitives: grid sampling, resizing, homographies, robust estimators, matching, SIFT.

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

Pixel coordinates put the centre of pixel i at i (as OpenCV).

Modules:
  sampling         grid_sample, identity grids, normalised <-> pixel conversions
  resize           torch-exact bilinear and PIL-exact resizes
  homography       apply, warp grid, normalisation changes, DLT fits
  random_draws     counter-based hash draws (uniform numbers, minimal samples of distinct indices)
  ransac           RANSAC for homographies / affine maps (``ransac``, ``find_homography``, ``find_homographies``)
  magsac           MAGSAC++ for homographies / affine maps
  magsac_sampling  MAGSAC++'s minimal samples (PROSAC or uniform)
  magsac_scoring   MAGSAC++'s marginalised loss and IRLS weight
  magsac_fitting   MAGSAC++'s weighted least-squares fits
  magsac_local     MAGSAC++'s local optimisation and final polishing
  matching         mutual nearest neighbours of L2-normalised features
  sift             OpenCV SIFT keypoints and descriptors, ratio-test matches
  classical/       classical (weightless) coarse alignment: a portfolio of aligners and a verification score
  full_resolution  an alignment's coordinate maps and warp at the original resolution, tile by tile
"""
