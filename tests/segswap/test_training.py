"""The ``segswap`` task through the real harness: tf.data batches and a tiny run (hard-negative mining on)."""

import math

import numpy as np
import orbax.checkpoint as ocp
import pytest

from artdup_jax.segswap import data, task
from artdup_jax.training import loop
from artdup_jax.training.metrics import read_metrics
from configs.segswap import get_config
from train.tasks import get_task


def test_pipeline_yields_batches_of_the_example_signature():
    config = get_config("tiny")
    batches = task.input_pipeline(config, first_step=1, process_index=0, process_count=1)
    batch = next(batches)
    signature = data.signature(task.synthesis_config(config), config.hard_negatives.pool_per_example)
    assert set(batch) == set(signature)
    for name, (shape, dtype) in signature.items():
        assert batch[name].shape == (config.batch_size, *shape) and batch[name].dtype == dtype, name
    # Step 1 holds examples batch_size .. 2 * batch_size - 1, whatever thread made them.
    expected = task._example_fn(config, config.seed)(config.batch_size)
    np.testing.assert_array_equal(batch["image_b"][0], expected["image_b"])
    np.testing.assert_array_equal(batch["flow_a"][0], expected["flow_a"])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("segswap_tiny")
    config = get_config("tiny")
    return workdir, config, loop.train(config, str(workdir), get_task(config.task))


def test_tiny_run_finishes_and_writes_checkpoints(tiny_run):
    workdir, config, report = tiny_run
    assert report["steps"] == config.total_steps
    kept = sorted(int(d.name) for d in (workdir / "checkpoints").iterdir() if d.name.isdigit())
    assert kept == [2, 4]
    metrics = report["final_train_metrics"]
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["hard_negatives"] > 0
    for key in ("mask_iou", "mask_auc", "all_foreground_iou", "centre_prior_iou", "loss", "negative_mask"):
        assert math.isfinite(report["final_eval_metrics"][key])


def test_training_moves_the_transformer_and_leaves_the_backbone_alone(tiny_run):
    workdir, _, report = tiny_run
    with ocp.CheckpointManager(workdir / "checkpoints") as manager:
        states = [manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
                  for step in (2, 4)]
    backbone = [s["params"]["backbone"]["conv1"]["kernel"] for s in states]
    projection = [s["params"]["transformer"]["feat_proj"]["kernel"] for s in states]
    np.testing.assert_array_equal(backbone[0], backbone[1])
    assert not np.allclose(projection[0], projection[1])
    # The first thing the model learns: no co-segmentation on negative pairs.
    assert report["final_eval_metrics"]["negative_mask"] < report["initial_eval_metrics"]["negative_mask"]


def test_smoke_variant_learns_correspondences_on_held_out_pairs(tmp_path):
    """The smoke variant, shortened to 60 steps: the loss falls and the held-out correspondence error drops.

    Mask IoU (and AUC) is reported, not asserted: the masks do not beat the trivial ones. Measured on 2
    shared CPU cores (2026-11-27), full smoke run (300 steps, 32 held-out pairs): correspondence L1 0.247 ->
    0.053, loss 2.80 -> 0.97, mask IoU 0.0 against all-foreground 0.314 and centre prior 0.231; the masks sit
    at the base rate (0.22 on foreground cells, 0.21 on background, 0.21 on negatives, AUC 0.55).
    Not a grid bug (issue #5; test_ground_truth_alignment.py): GT correspondences land on the pasted pixels
    (mean |ΔRGB| 0.003 inside the mask, 0.27 outside), the GT itself scores IoU 1 through the evaluation.
    Knobs that did not help (all still IoU 0.0 at 300 steps): η = 1 instead of 8, 600 steps, no region key
    masks, the object pasted in place (identity correspondences, learnt to L1 0.008). Why: the model's
    correspondences for background cells go to their most similar cell (L1 0.45 from the GT translation,
    cosine 0.973 there vs 0.977 for object cells), and random ResNet-50 features give no per-cell evidence:
    thresholding each cell's best-match cosine reaches IoU 0.32 at best, the same as all-foreground, while
    the cosine at the GT correspondence would reach 0.61 (AUC 0.91), i.e. only the geometric consistency of
    the global offset tells shared cells apart. And the transformer learns that slowly even from perfect
    features: on toy pairs whose shared cells are exact copies of random 1024-d vectors, the smoke-size
    transformer and the spec loss reach mask 0.19 on shared vs 0.11 on other cells after 600 steps (IoU 0
    at 0.5; same with η = 0 or 1, lr 3e-3). Expected, not measured offline: MoCo-v2 features and a far longer run.
    """
    config = get_config("smoke")
    config.total_steps, config.eval_every, config.eval_pairs = 60, 60, 16
    config.log_every, config.checkpoint_every = 10, 60
    report = loop.train(config, str(tmp_path), get_task(config.task))
    losses = {r["step"]: r["loss"] for r in read_metrics(str(tmp_path))}
    first, last = report["initial_eval_metrics"], report["final_eval_metrics"]
    print(f"\nsmoke losses {losses}\ninitial eval {first}\nfinal eval {last}")
    assert np.mean([losses[s] for s in (50, 60)]) < 0.75 * np.mean([losses[s] for s in (10, 20)])
    assert last["correspondence"] < 0.6 * first["correspondence"]
    assert last["loss"] < first["loss"]
