"""The robust-estimation benchmark's batch of the tool's own discovery candidates, at a small size."""

import numpy as np

from benchmarks.discovery_candidates import decisions, markdown, verification_vs_sequential


def test_decisions_count_verified_pairs_against_the_truth():
    counts = np.array([40, 3, 15, 14, 20])
    related = np.array([True, True, True, False, False])
    d = decisions(counts, related, min_inliers=15)
    assert (d["verified_related"], d["related"], d["verified_unrelated"], d["unrelated"]) == (2, 3, 1, 2)
    assert d["median_inliers_related"] == 15.0


def test_the_tool_candidates_are_verified_like_opencv_does():
    batch = verification_vs_sequential(32)
    assert batch["pairs"] == 32 and batch["padded_rows"] == 256 and batch["distinct_pairs"] >= 20
    ours, opencv = batch["ours"], batch["opencv"]
    assert ours["related"] == opencv["related"] > 0
    # the same decisions within two pairs, on the tool's settings (4 px, at most 2,000 hypotheses)
    assert abs(ours["verified_related"] - opencv["verified_related"]) <= 2, (ours, opencv)
    assert ours["verified_related"] >= ours["related"] // 2
    assert batch["ours_seconds"] > 0 and batch["opencv_seconds"] > 0 and batch["mean_iterations_drawn"] >= 32
    assert "discovery verification (the tool's candidates): 32 pairs" in markdown(batch)
