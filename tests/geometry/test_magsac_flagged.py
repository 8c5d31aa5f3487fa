"""Steps run on the flagged pairs of a batch only, and small match sets on their compact rows: the same results
as running every pair on all its rows."""

import functools

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from artdup_jax.geometry.magsac import magsac_homographies, magsac_pair
from artdup_jax.geometry.magsac_flagged import compact, map_flagged, map_flagged_compact
from artdup_jax.geometry.magsac_sampling import sample_order, stratified_rows
from artdup_jax.geometry.magsac_search import Problem
from tests.geometry.random_models import random_homography

ROWS = 128
COMPACT_ROWS = 32  # ROWS / COMPACT_ROWS = 4: small pairs run compacted
BATCH_ROWS = 256  # the batch test: 4 x magsac_search.PREEMPTION_ROWS


def test_map_flagged_runs_fn_on_flagged_pairs_only():
    values = jnp.arange(10.0)
    flags = jnp.array([1, 0, 0, 1, 1, 0, 0, 0, 0, 1], bool)
    calls = map_flagged(lambda v: v * 100.0, flags, -values, (values,), fraction=4)
    np.testing.assert_array_equal(np.asarray(calls), np.where(np.asarray(flags), np.arange(10) * 100.0, -np.arange(10)))
    none = map_flagged(lambda v: v * 100.0, jnp.zeros(10, bool), -values, (values,), fraction=4)
    np.testing.assert_array_equal(np.asarray(none), -np.arange(10.0))


def _problems(n_valid, compact_rows=COMPACT_ROWS):
    """A batch of search problems of random points, ``(P, ROWS, 2)``, whose valid rows are scattered among the
    rows; only the fields that ``compact`` and the functions below read are meaningful."""

    rng = np.random.default_rng(0)
    num = len(n_valid)
    src = rng.uniform(-1, 1, (num, ROWS, 2)).astype(np.float32)
    dst = rng.uniform(-1, 1, (num, ROWS, 2)).astype(np.float32)
    valid = np.zeros((num, ROWS), bool)
    for p, n in enumerate(n_valid):
        valid[p, rng.choice(ROWS, n, replace=False)] = True
    order = sample_order(jnp.asarray(valid))
    counts = jnp.asarray(n_valid, jnp.int32)
    subset = jax.vmap(lambda o, n: stratified_rows(o, n, compact_rows))(order, counts)
    zeros = jnp.zeros((num,), jnp.float32)
    return Problem(src=jnp.asarray(src), dst=jnp.asarray(dst), valid=jnp.asarray(valid), order=order,
                   schedule=jnp.zeros((num, 0), jnp.float32), subset=subset, thresholds=(zeros, zeros),
                   key_bits=jnp.zeros((num, 2), jnp.uint32), n_valid=counts, max_iterations=counts,
                   confidence=zeros)


def _moments(problem, weight):
    """Sums over the valid rows that any row order gives (up to rounding), and the rows summed over."""
    v = jnp.where(problem.valid, 1.0, 0.0)
    return (jnp.sum(v * problem.src[:, 0] * weight), jnp.sum(v * problem.dst[:, 1] ** 2),
            jnp.int32(problem.src.shape[0]))


def test_compact_problem_holds_every_valid_match_of_a_small_pair():
    problems = _problems([5, 32, 33, 128])
    small = jax.tree.map(lambda a: a[0], problems)
    squeezed = compact(small)
    assert squeezed.src.shape == (COMPACT_ROWS, 2) and int(squeezed.valid.sum()) == 5
    np.testing.assert_allclose(np.sort(np.asarray(squeezed.src[np.asarray(squeezed.valid)]), axis=0),
                               np.sort(np.asarray(small.src[np.asarray(small.valid)]), axis=0))


def test_map_flagged_compact_equals_full_rows():
    n_valid = [5, 20, 32, 33, 100, 128, 12, 30]
    problems = _problems(n_valid)
    weights = jnp.linspace(0.5, 2.0, len(n_valid))
    flags = jnp.array([1, 1, 1, 1, 1, 1, 0, 1], bool)
    default = (jnp.full((8,), -1.0), jnp.full((8,), -1.0), jnp.zeros((8,), jnp.int32))
    full = map_flagged(_moments, flags, default, (problems, weights), fraction=2)
    compacted = map_flagged_compact(_moments, flags, default, problems, (weights,), 2, COMPACT_ROWS)
    np.testing.assert_allclose(np.asarray(compacted[0]), np.asarray(full[0]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(compacted[1]), np.asarray(full[1]), rtol=1e-5, atol=1e-5)
    # rows summed over: compact for the flagged pairs with at most 32 valid matches, all rows for the others
    np.testing.assert_array_equal(np.asarray(compacted[2]), [32, 32, 32, 128, 128, 128, 0, 32])


def test_fewer_padded_rows_than_the_compact_factor_run_all_rows():
    problems = _problems([5, 20, 100], compact_rows=64)  # 128 rows < 4 x 64
    default = (jnp.zeros((3,)), jnp.zeros((3,)), jnp.zeros((3,), jnp.int32))
    out = map_flagged_compact(_moments, jnp.ones((3,), bool), default, problems, (jnp.ones((3,)),), 2, 64)
    np.testing.assert_array_equal(np.asarray(out[2]), [128, 128, 128])


def test_grouped_batch_with_small_match_sets_equals_each_pair_on_all_rows():
    """16 pairs (grouped search, local optimisation, polish and refit on compact rows where they fit) vs the
    vmapped one-pair function, which always uses all rows."""
    rng = np.random.default_rng(3)
    num = 16
    src = np.zeros((num, BATCH_ROWS, 2), np.float32)
    dst = np.zeros((num, BATCH_ROWS, 2), np.float32)
    valid = np.zeros((num, BATCH_ROWS), bool)
    for p in range(num):
        n = int(rng.integers(20, 60)) if p % 4 else int(rng.integers(70, BATCH_ROWS))
        H = random_homography(rng)
        points = rng.uniform(0, 640, (n, 2))
        moved = cv2.perspectiveTransform(points[None], H)[0] + rng.normal(0, 0.7, (n, 2))
        junk = rng.random(n) < 0.3
        moved[junk] = rng.uniform(0, 640, (junk.sum(), 2))
        rows = rng.choice(BATCH_ROWS, n, replace=False)
        src[p, rows], dst[p, rows], valid[p, rows] = points, moved, True
    batch = jax.device_get(magsac_homographies(src, dst, valid, threshold=3.0, seed=7))
    single = jax.device_get(jax.jit(jax.vmap(functools.partial(magsac_pair, threshold=3.0, seed=7)))(src, dst, valid))
    assert batch.found.all() and single.found.all()
    np.testing.assert_array_equal(batch.iterations, single.iterations)
    np.testing.assert_array_equal(batch.inliers, single.inliers)
    corners = np.float64([[[0, 0], [640, 0], [640, 640], [0, 640]]])
    for p in range(num):
        a = cv2.perspectiveTransform(corners, batch.H[p].astype(np.float64))
        b = cv2.perspectiveTransform(corners, single.H[p].astype(np.float64))
        assert np.linalg.norm(a - b, axis=-1).mean() < 0.02
