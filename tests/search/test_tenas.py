"""TE-NAS pruning: candidate masks, rank combination, and a tiny end-to-end run."""

import numpy as np

from jaxnas import search
from jaxnas.search import tenas


def _timeless(trace):
  return [{k: v for k, v in t.items() if k != "seconds"} for t in trace]


def test_candidates_remove_one_op_each():
  mask = np.array([[0, 1, 1, 0, 1], [0, 0, 0, 1, 0]], np.float32)
  cands, where = tenas.candidates(mask)
  assert where == [(0, 1), (0, 2), (0, 4)]              # edge 1 has a single op: not a candidate
  assert np.array_equal(cands[0], mask)
  for m, (e, k) in zip(cands[1:], where):
    assert (mask - m).sum() == 1 and mask[e, k] - m[e, k] == 1


def test_mixture_is_uniform_over_remaining_ops():
  mask = np.array([[0, 1, 1, 0, 1], [0, 0, 0, 1, 0]], np.float32)
  np.testing.assert_allclose(tenas.mixture(mask), mask / mask.sum(1, keepdims=True))


def test_rank_sum_orders_and_ties():
  # dkappa descending, dregions ascending; values equal to 3 significant figures tie
  dk = np.array([0.5, 0.10001, 0.1, -0.2])
  dr = np.array([0.3, 0.0, 0.1, 0.0])
  np.testing.assert_array_equal(tenas.rank_sum(dk, dr), [0 + 3, 1 + 0, 1 + 2, 3 + 0])


def test_prune_removes_the_smallest_rank_sum_per_edge():
  mask = np.array([[0, 1, 1, 1, 1], [0, 1, 1, 0, 0]], np.float32)
  _, where = tenas.candidates(mask)
  total = np.array([5, 2, 7, 2, 9, 1])                    # edge 0: ops 1..4, edge 1: ops 1, 2
  out = tenas.prune(mask, where, total)
  assert out.tolist() == [[0, 1, 0, 1, 1], [0, 1, 0, 0, 0]]   # ties keep the first minimum


def test_tenas_runs_on_tiny_supernets_and_is_deterministic():
  kw = dict(repeats=1, ntk_batch=6, ntk_supernet={"C": 2, "N": 1}, region_samples=40,
            resolution=8)
  a = search.search("tenas", "nb201", seed=0, **kw)
  b = search.search("tenas", "nb201", seed=0, **kw)
  assert np.array_equal(a.arch, b.arch) and _timeless(a.trace) == _timeless(b.trace)
  assert len(a.trace) == 3 and np.all(a.arch > 0)          # 4 ops -> 1 in three rounds, no none
  assert [len(t["candidates"]) for t in a.trace] == [24, 18, 12]
  assert [len(t["pruned"]) for t in a.trace] == [6, 6, 6]
  for t in a.trace:
    assert np.isfinite(t["kappa_full"]) and t["kappa_full"] >= 1
    assert 1 <= t["regions_full"] <= 40
