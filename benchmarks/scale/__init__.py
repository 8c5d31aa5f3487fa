"""Collection scale: the collection index (``artdup index``) end to end at growing collection sizes.

    python -m benchmarks.scale                          # 1,000 and 10,000 images of 96 x 128 px
    python -m benchmarks.scale --sizes 1000,3000 --max-seconds 3600 --out runs/scale
    python -m benchmarks.scale --tiny                   # 40 images (CI)

Per size ``N``: a synthetic collection written to disk (``collection``: 4 planted categories of 6 copies, one
copy held out, unique distractors), then ``artdup index build``, ``discover --index``, ``index add`` of the
held-out copy, ``discover --index`` again (verifies only the new pairs) and ``index info``, each as its own child
process (``measure``, ``stages``): build images / hour, feature-extraction time, verification directional pairs
/ s, add-one-image latency (add + its discovery), peak RSS of every stage, disk bytes per image, planted-group
precision / recall, and whether the added copy joins its category's group. With two or more sizes the build and
discovery times are extrapolated to 100,000 images by a least-squares line (labelled as such).

Settings: random weights (the features cost what trained ones cost), ``--scales 20 16 12 --reference-cells 16``
unless ``--release-settings`` (7 scales, 40-cell references). Feature maps depend on these cell counts, not on
the image size: small images only make the collection cheap to write.
"""
