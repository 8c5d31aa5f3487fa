"""Throughput benchmark: our JAX stages vs the official approach in PyTorch (and OpenCV), on the same inputs.

Run ``python -m benchmarks.throughput [--stages features,fine,...] [--quick] [--device cpu|gpu] [--json out.json]
[--markdown out.md]``; ``scripts/gpu_check`` runs it all on a CUDA GPU. ``harness`` holds the generic timer
and report, ``models`` the random-weight networks shared by both frameworks; each other module is one stage
exposing ``run(quick, device) -> list[dict]``: ``peak`` (float32 matmul), ``features`` (ResNet trunks),
``ransac``, ``fine`` (RANSAC-Flow fine network), ``segswap`` (transformer and pair scoring), ``artminer``
(one-shot detection), ``train`` (one training step).
"""
