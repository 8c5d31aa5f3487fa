"""The smoke pairs' ground truth, the loss and the evaluation agree on one cell grid (issue #5 checks).

A model that outputs the ground truth itself must score a perfect held-out IoU and no correspondence
error; the same masks transposed, or read from another channel, must not.
"""

import numpy as np
import pytest

from artdup_jax.segswap import task
from artdup_jax.segswap.data import ground_truth
from artdup_jax.segswap.metrics import foreground_auc
from configs.segswap import get_config


@pytest.fixture(scope="module")
def held_out():
    config = get_config("smoke")
    config.eval_pairs = 8
    return config, task._eval_batch(config)


def _ground_truth_outputs(batch, masks_a, masks_b):
    """``(2P, h, w, 3)`` outputs for A and B: the GT flows and the given masks; negatives predict no mask."""
    out_a = np.concatenate([batch["flow_a"], masks_a[..., None]], axis=-1)
    out_b = np.concatenate([batch["flow_b"], masks_b[..., None]], axis=-1)
    negative_a, negative_b = out_a.copy(), out_b.copy()
    negative_a[..., 2] = negative_b[..., 2] = 0.0
    clip = lambda o: np.clip(o, 1e-7, 1 - 1e-7).astype(np.float32)  # noqa: E731  the model's range
    return clip(np.concatenate([out_a, negative_a])), clip(np.concatenate([out_b, negative_b]))


def test_ground_truth_correspondences_point_at_the_same_pixels(held_out):
    config, batch = held_out
    grid = config.input.image_size // config.input.stride
    inside, outside = [], []
    for i in range(len(batch["image_a"])):
        a, b = batch["image_a"][i], batch["image_b"][i]
        for image, other, mask, flow in ((a, b, batch["mask_a"][i], batch["flow_a"][i]),
                                         (b, a, batch["mask_b"][i], batch["flow_b"][i])):
            difference = np.abs(ground_truth.sample_cells(image, ground_truth.cell_centres(grid))
                                - ground_truth.sample_cells(other, flow)).mean(-1)
            inside.append(difference[mask > 0.5])
            outside.append(difference[mask < 0.01])
    # Copy-paste at the object's own scale: the pasted cells are the source's pixels (measured 0.003 vs 0.27).
    assert np.concatenate(inside).mean() < 0.02 < 0.1 < np.concatenate(outside).mean()


def test_the_ground_truth_as_output_scores_a_perfect_held_out_iou(held_out):
    config, batch = held_out
    metrics = task.held_out_metrics(*_ground_truth_outputs(batch, batch["mask_a"], batch["mask_b"]), batch,
                                    config.loss.correspondence_weight)
    assert metrics["mask_iou"] == 1.0 > metrics["baseline_iou"]
    assert metrics["mask_auc"] == 1.0
    assert metrics["correspondence"] < 1e-6 and metrics["negative_mask"] < 1e-6
    transposed = task.held_out_metrics(
        *_ground_truth_outputs(batch, batch["mask_a"].transpose(0, 2, 1), batch["mask_b"].transpose(0, 2, 1)),
        batch, config.loss.correspondence_weight)
    assert transposed["mask_iou"] < 0.6 and transposed["loss"] > metrics["loss"] + 0.1


def test_the_evaluation_reads_the_mask_from_the_last_channel(held_out):
    config, batch = held_out
    out_x, out_y = _ground_truth_outputs(batch, batch["mask_a"], batch["mask_b"])
    # The mask moved to channel 0 (and x to channel 2): the IoU must collapse.
    swapped = task.held_out_metrics(out_x[..., ::-1], out_y[..., ::-1], batch, config.loss.correspondence_weight)
    assert swapped["mask_iou"] < 0.5


def test_foreground_auc_ranks_cells_without_a_threshold():
    truth = np.array([[[1.0, 1.0], [0.0, 0.0]]])
    assert foreground_auc(np.array([[[0.3, 0.2], [0.1, 0.0]]]), truth) == 1.0  # all below 0.5, ranked right
    assert foreground_auc(np.array([[[0.2, 0.2], [0.2, 0.2]]]), truth) == 0.5  # a constant mask
    assert foreground_auc(np.array([[[0.0, 0.3], [0.2, 0.1]]]), truth) == 0.5  # (0.0 < both, 0.3 > both)
    assert foreground_auc(np.zeros((1, 2, 2)), np.zeros((1, 2, 2))) == 0.5
