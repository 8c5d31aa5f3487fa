"""Throughput benchmark: our JAX stages vs the official-approach PyTorch ports and OpenCV.

Run ``python -m eval.throughput [--stages ransac] [--quick] [--json out.json] [--markdown out.md]``.
``harness`` holds the generic timer; each other module is one stage exposing ``run(quick) -> list[dict]``.
"""
