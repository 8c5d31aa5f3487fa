"""Readers for the RANSAC-Flow evaluation benchmarks, one small module each.

* ``hpatches``: HPatches sequences (``v_*/1.ppm..6.ppm``, ``H_1_k``) and the DGC-Net CSV tables, with the
  240x240 ground-truth grid of the AEPE protocol.
* ``kitti``: KITTI 2015 flow training pairs and the 16-bit flow PNG codec.
* ``megadepth``: MegaDepth-1600 / RobotCar sparse CSV pairs and the shorter-side-480 resize rule.
* ``yfcc``: OANet YFCC pair pickles, ``images.txt`` / ``calibration.txt`` / HDF5 calibration, relative poses.

Paths are always given by the caller; a layout that does not match raises the module's ``*LayoutError``
(a ``ValueError``) naming the missing piece. The metrics are in ``artdup_jax.ransac_flow.metrics``.
"""

from artdup_jax.data.datasets.hpatches import HPatchesLayoutError, HPatchesPair, HPatchesSequence
from artdup_jax.data.datasets.kitti import KittiFlowPair, KittiLayoutError
from artdup_jax.data.datasets.megadepth import SparseLayoutError, SparsePair
from artdup_jax.data.datasets.yfcc import YFCCLayoutError, YFCCPair

__all__ = [
    "HPatchesLayoutError",
    "HPatchesPair",
    "HPatchesSequence",
    "KittiFlowPair",
    "KittiLayoutError",
    "SparseLayoutError",
    "SparsePair",
    "YFCCLayoutError",
    "YFCCPair",
]
