"""The papers' evaluation protocols, run from a checkout: ``python -m eval NAME [options]`` (or ``artdup eval``).

``PROTOCOLS`` is the registry: name -> (module, method, what it measures). Each module has ``main(argv)``.
"""

PROTOCOLS = {
    "hpatches": ("eval.hpatches", "RANSAC-Flow", "HPatches dense alignment: AEPE, PCK-1/3/5, corner error"),
    "kitti": ("eval.kitti", "RANSAC-Flow", "KITTI 2015 optical flow: AEPE, Fl-all"),
    "megadepth": ("eval.megadepth", "RANSAC-Flow", "MegaDepth-1600 / RobotCar sparse correspondences: PCK"),
    "yfcc": ("eval.yfcc", "RANSAC-Flow", "YFCC100M two-view geometry: relative-pose mAP"),
    "brueghel": ("eval.brueghel", "ArtMiner", "Brueghel one-shot detection: mAP"),
    "ltll": ("eval.ltll", "ArtMiner", "LTLL cross-domain classification with the discovery score: accuracy"),
    "oxford": ("eval.oxford", "ArtMiner", "Oxford5K retrieval: mAP"),
    "internet_coseg": ("eval.internet_coseg", "SegSwap", "Internet co-segmentation: precision P, Jaccard J"),
    "place_rerank": ("eval.place_rerank", "SegSwap", "place recognition re-ranked by the pair score: recall@N"),
}
