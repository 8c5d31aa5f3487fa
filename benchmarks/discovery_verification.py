"""Verification speed at the release settings: ``score_pairs`` on a 100-image collection's candidate pairs.

    python -m benchmarks.discovery_verification                     # time, save scores to --out
    python -m benchmarks.discovery_verification --compare OLD.npz   # ... and compare with earlier scores
    python -m benchmarks.discovery_verification --limit 64          # the first 64 directional pairs only

The collection (``make_collection``: 4 planted categories x 5 copies + 80 distractors, 240 x 320 px) and its
feature bank (random weights, ``init_variables(0)``, ``DiscoveryConfig()`` = the release's settings: reference 40
cells, 7 target scales, 1000 hypotheses, top-10 candidates) are built once under ``--work`` and reused. The
directional candidate pairs are scored once untimed (compilation plus one run, reported as ``first_call_s``),
then ``--repeats`` timed runs: pairs/s is the median. Scores, boxes and the groups ``group_pairs`` makes of them
(what ``discover`` returns for this bank) are saved to ``--out``; ``--compare`` gives the largest score and box
differences against an earlier file and whether the groups are identical. Peak RSS is the process's.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import time

import numpy as np

COLLECTION = dict(seed=0, num_categories=4, instances_per_category=5, num_distractors=80, image_size=(240, 320))
BANK_FIELDS = ("image_hw", "reference", "reference_valid", "reference_hw", "target_hw", "descriptors")


def collection_paths(work: str) -> list[str]:
    from artdup_jax.data.synthetic_collection import make_collection

    folder = os.path.join(work, "images")
    done = os.path.join(folder, "annotations.json")
    if not os.path.exists(done):
        make_collection(folder, **COLLECTION)
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".png"))


def load_bank(work: str, paths: list[str], config):
    """The bank of ``paths`` at ``config``, extracted once and kept as ``.npy`` files (read memory-mapped)."""
    from artdup_jax.artminer import init_variables
    from artdup_jax.artminer.discovery import FeatureBank, extract_features

    folder = os.path.join(work, "bank")
    if not os.path.exists(os.path.join(folder, "done")):
        bank, unreadable = extract_features(init_variables(0), paths, config)
        assert not unreadable, unreadable
        os.makedirs(folder, exist_ok=True)
        for name in BANK_FIELDS:
            np.save(os.path.join(folder, f"{name}.npy"), getattr(bank, name))
        for s in range(len(bank.targets)):
            np.save(os.path.join(folder, f"targets_{s}.npy"), bank.targets[s])
            np.save(os.path.join(folder, f"target_valid_{s}.npy"), bank.target_valid[s])
        with open(os.path.join(folder, "done"), "w") as f:
            json.dump({"paths": bank.paths, "margin": bank.margin, "scales": len(bank.targets)}, f)
    with open(os.path.join(folder, "done")) as f:
        meta = json.load(f)
    arrays = {name: np.load(os.path.join(folder, f"{name}.npy"), mmap_mode="r") for name in BANK_FIELDS}
    return FeatureBank(
        paths=meta["paths"], margin=meta["margin"],
        targets=[np.load(os.path.join(folder, f"targets_{s}.npy"), mmap_mode="r") for s in range(meta["scales"])],
        target_valid=[np.load(os.path.join(folder, f"target_valid_{s}.npy")) for s in range(meta["scales"])],
        **{k: (np.asarray(v) if k != "reference" else v) for k, v in arrays.items()})


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="/tmp/artdup_discovery_verification", help="collection and bank folder")
    parser.add_argument("--out", default=None, help="scores file (.npz); default WORK/scores.npz")
    parser.add_argument("--compare", default=None, help="earlier scores file (.npz) to compare with")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="score only the first LIMIT directional pairs")
    parser.add_argument("--implementation", default="artdup_jax.artminer.discovery.verification",
                        help="module whose score_pairs is timed (e.g. a frozen copy of an earlier version)")
    args = parser.parse_args(argv)

    from artdup_jax.artminer.discovery import DiscoveryConfig, candidate_pairs, directed
    from artdup_jax.artminer.discovery.groups import group_pairs

    score_pairs = importlib.import_module(args.implementation).score_pairs

    config = DiscoveryConfig()
    os.makedirs(args.work, exist_ok=True)
    paths = collection_paths(args.work)
    start = time.perf_counter()
    bank = load_bank(args.work, paths, config)
    bank_s = time.perf_counter() - start
    pairs = candidate_pairs(bank.descriptors, config.top_k)
    directional = directed(pairs, config.symmetric)
    if args.limit:
        directional = directional[:args.limit]
    print(f"{len(bank)} images, {len(pairs)} candidate pairs, {len(directional)} directional pairs scored; "
          f"bank ready in {bank_s:.1f} s, peak RSS so far {peak_rss_gb():.2f} GB", flush=True)

    start = time.perf_counter()
    result = score_pairs(bank, directional, config)
    first_s = time.perf_counter() - start
    print(f"first call (compilation + one run): {first_s:.1f} s", flush=True)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = score_pairs(bank, directional, config)
        times.append(time.perf_counter() - start)
        print(f"  run: {times[-1]:.2f} s, {len(directional) / times[-1]:.2f} pairs/s", flush=True)
    median = float(np.median(times)) if times else first_s
    summary = {"implementation": args.implementation, "pairs": len(directional), "median_s": median,
               "pairs_per_s": len(directional) / median,
               "runs_s": times, "first_call_s": first_s, "compile_s_estimate": first_s - median,
               "peak_rss_gb": peak_rss_gb(), "pairs_above_threshold": int((result.scores > config.threshold).sum()),
               "nonzero_scores": int((result.scores > 0).sum())}

    out = args.out or os.path.join(args.work, "scores.npz")
    groups = []
    if not args.limit:
        _, found, _ = group_pairs(pairs, result, len(bank), config)
        groups = [g.images for g in found]
        summary["groups"] = groups
    np.savez(out, pairs=result.pairs, scores=result.scores, num_matches=result.num_matches,
             reference_boxes=result.reference_boxes, target_boxes=result.target_boxes,
             groups=json.dumps(groups))
    if args.compare:
        old = np.load(args.compare)
        k = min(len(old["pairs"]), len(result.pairs))
        assert (old["pairs"][:k] == result.pairs[:k]).all(), "different pairs"
        summary["compare"] = {
            "pairs": k,
            "max_abs_score_diff": float(np.abs(old["scores"][:k] - result.scores[:k]).max(initial=0)),
            "num_matches_equal": bool((old["num_matches"][:k] == result.num_matches[:k]).all()),
            "max_abs_box_diff_px": float(max(np.abs(old["reference_boxes"][:k] - result.reference_boxes[:k]).max(
                initial=0), np.abs(old["target_boxes"][:k] - result.target_boxes[:k]).max(initial=0))),
            "groups_equal": json.loads(str(old["groups"])) == groups,
        }
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
