"""Runs the library's main inference paths on the oldest supported stack: jax 0.11.2, no TensorFlow.

Used by scripts/check_min_jax (and CI); exits non-zero on any failure.
"""
import sys, numpy as np, jax, jax.numpy as jnp
sys.modules["tensorflow"] = None
from artdup_jax.nn import resnet18, resnet50
from artdup_jax.ransac_flow import init_fine_network, fine_flow, refine
from artdup_jax.geometry.ransac import find_homography
from artdup_jax.geometry.sampling import grid_sample
from artdup_jax.segswap import predict, init_segswap
import artdup_jax.artminer
x = jnp.asarray(np.random.rand(1, 64, 64, 3).astype(np.float32))
v = resnet50().init(jax.random.PRNGKey(0), x); print("resnet50 layer3", resnet50().apply(v, x).shape)
fv = init_fine_network(jax.random.PRNGKey(0)); out = refine(fv, x, x, jnp.eye(3)); print("refine", out["grid"].shape)
rng = np.random.default_rng(0); src = rng.uniform(0, 300, (200, 2)); H = np.array([[1, .1, 5], [0, 1, 3], [0, 0, 1.]])
dst = (np.c_[src, np.ones(200)] @ H.T); dst = dst[:, :2] / dst[:, 2:]
Hest, inl = find_homography(src, dst, threshold=1.0, iterations=2000); print("ransac err", np.abs(Hest - H).max(), inl.sum())
sv = init_segswap(jax.random.PRNGKey(0), (64, 64)); print("segswap", predict(sv, x, x)["source"].shape)
print("ok", jax.__version__)
