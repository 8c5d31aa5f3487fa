"""The SegSwap loss against a direct evaluation with PyTorch's BCELoss and grid_sample."""

import jax
import jax.numpy as jnp
import numpy as np
import torch

from artdup_jax.segswap import losses


def _case(seed, positives=3, negatives=5, height=6, width=5):
    rng = np.random.default_rng(seed)
    unit = lambda *shape: rng.uniform(0.02, 0.98, shape).astype(np.float32)  # noqa: E731
    masks = []
    for _ in range(2):
        mask = unit(positives, height, width) * (rng.uniform(size=(positives, height, width)) < 0.6)
        mask[:, 1:4, 1:3] = 1.0  # several cells at the per-sample maximum
        masks.append(mask.astype(np.float32))
    return {
        "output_x": unit(positives, height, width, 3), "output_y": unit(positives, height, width, 3),
        "mask_x": masks[0], "mask_y": masks[1],
        "flow_x": rng.uniform(-0.2, 1.2, (positives, height, width, 2)).astype(np.float32),
        "flow_y": rng.uniform(-0.2, 1.2, (positives, height, width, 2)).astype(np.float32),
        "negative_x": unit(negatives, height, width, 3), "negative_y": unit(negatives, height, width, 3),
        "negative_weight": np.array([1, 0, 1, 1, 0], np.float32)[:negatives],
    }


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x, np.float64).transpose(0, 3, 1, 2)))


def _torch_reference(case, eta=8.0):
    """The official recipe: one BCELoss mean over the concatenated maps (dropped negatives left out)."""
    out_x, out_y = _nchw(case["output_x"]), _nchw(case["output_y"])

    def transported(source, target):  # S(O_t[mask], O_s[xy]), clamped
        grid = 2 * source[:, :2].permute(0, 2, 3, 1) - 1
        sampled = torch.nn.functional.grid_sample(target[:, 2:3], grid, mode="bilinear", padding_mode="zeros",
                                                  align_corners=False)
        return sampled.clamp(1e-7, 1 - 1e-7)[:, 0]

    mask_x, mask_y = torch.from_numpy(case["mask_x"]).double(), torch.from_numpy(case["mask_y"]).double()
    keep = case["negative_weight"] > 0
    neg_x, neg_y = _nchw(case["negative_x"][keep]), _nchw(case["negative_y"][keep])
    predictions = [out_x[:, 2], out_y[:, 2], transported(out_x, out_y), transported(out_y, out_x),
                   neg_x[:, 2], neg_y[:, 2]]
    targets = [mask_x, mask_y, mask_x, mask_y, torch.zeros_like(neg_x[:, 2]), torch.zeros_like(neg_y[:, 2])]
    bce = torch.nn.BCELoss()(torch.cat([p.flatten() for p in predictions]),
                             torch.cat([t.flatten() for t in targets])).item()

    total, count = 0.0, 0
    for output, flow, mask in ((case["output_x"], case["flow_x"], case["mask_x"]),
                               (case["output_y"], case["flow_y"], case["mask_y"])):
        for i in range(len(mask)):
            cells = mask[i] == mask[i].max()
            total += np.abs(output[i][cells][:, :2].astype(np.float64) - flow[i][cells]).sum()
            count += cells.sum()
    return bce + eta * total / (2 * count), bce


def test_loss_matches_the_official_recipe_evaluated_with_pytorch():
    case = _case(0)
    loss, metrics = losses.segswap_loss(**{k: jnp.asarray(v) for k, v in case.items()})
    reference, reference_bce = _torch_reference(case)
    np.testing.assert_allclose(float(metrics["bce"]), reference_bce, rtol=2e-5)
    np.testing.assert_allclose(float(loss), reference, rtol=2e-5)


def test_correspondence_loss_only_counts_cells_at_the_mask_maximum():
    case = _case(1)
    exact_x = case["output_x"].copy()
    exact_x[..., :2] = case["flow_x"]
    exact_y = case["output_y"].copy()
    exact_y[..., :2] = case["flow_y"]
    off_peak = case["mask_x"] < case["mask_x"].max(axis=(1, 2), keepdims=True)
    exact_x[..., :2] += 0.3 * off_peak[..., None]  # wrong only where the GT mask is below its maximum
    value = losses.correspondence_loss(exact_x[..., :2], case["flow_x"], case["mask_x"], exact_y[..., :2],
                                       case["flow_y"], case["mask_y"])
    assert float(value) == 0.0
    exact_x[0, 2, 1, 0] += 0.3  # a peak cell
    value = losses.correspondence_loss(exact_x[..., :2], case["flow_x"], case["mask_x"], exact_y[..., :2],
                                       case["flow_y"], case["mask_y"])
    assert float(value) > 0.0


def test_transported_mask_term_sends_gradients_to_the_predicted_correspondences():
    case = {k: jnp.asarray(v) for k, v in _case(2).items()}

    def bce_of(output_x):
        return losses.segswap_loss(**{**case, "output_x": output_x})[1]["transported_bce"]

    gradient = jax.grad(bce_of)(case["output_x"])
    assert float(jnp.abs(gradient[..., :2]).sum()) > 0.0
