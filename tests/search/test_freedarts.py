"""FreeDARTS / FreeNAS on the tiny NB201 supernet (C=4, N=1, 8x8)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import search
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import freeflow
from jaxnas.search import freedarts
from jaxnas.spaces import nb201
from tests.conftest import TINY

OPTS = dict(supernet=TINY, resolution=8)


def test_a_search_starts_by_releasing_compiled_programs_near_the_map_limit(monkeypatch):
  """``search.search`` checks the process's memory maps before the method compiles (as the
  engine does, ``jaxnas.engine.memory``): near the limit it warns, and the result is unchanged."""
  from jaxnas.engine import memory
  want = search.search("freedarts", "nb201", seed=0, **OPTS)
  monkeypatch.setattr(memory, "memory_maps", lambda: (60_000, 65_530))
  with pytest.warns(RuntimeWarning, match="60,000 memory maps of the 65,530"):
    got = search.search("freedarts", "nb201", seed=0, **OPTS)
  assert np.array_equal(got.arch, want.arch) and got.extra == want.extra


def test_oneshot_synflow_scores_are_the_alpha_sensitivity_and_deterministic():
  a = search.search("freedarts", "nb201", seed=0, **OPTS)
  b = search.search("freedarts", "nb201", seed=0, **OPTS)
  assert np.array_equal(a.arch, b.arch) and a.extra == b.extra
  assert len(a.trace) == 1 and a.seconds > 0
  s = np.asarray(a.extra["scores"])
  assert s.shape == (6, 5) and np.all(s >= 0) and np.all(np.isfinite(s))
  # the chosen op is the best non-none op on every edge
  assert np.array_equal(a.arch, 1 + np.argmax(s[:, 1:], axis=1))
  # independent recomputation: alpha_0 = 1e-3 N(0,1) from the key, |alpha|, |theta|, ones input
  k_alpha, k_init, _ = jax.random.split(jax.random.key(0), 3)
  alpha = 1e-3 * jax.random.normal(k_alpha, (6, 5))
  mod = nb201.model(**TINY, cell_bn_affine=False)
  ones = jnp.ones((1, 8, 8, 3))
  params = mod.init(k_init, ones, alpha)["params"]
  want, _ = jax.jit(lambda p, a: freeflow.sensitivity(mod, p, jnp.abs(a), ones))(params, alpha)
  want = np.asarray(want).copy()
  want[:, 0] = 0.0                                       # none is masked out of the supernet
  np.testing.assert_allclose(s, want, rtol=1e-5, atol=1e-12)


def test_seeds_change_the_initialisation():
  s0 = search.search("freedarts", "nb201", seed=0, **OPTS).extra["scores"]
  s1 = search.search("freedarts", "nb201", seed=1, **OPTS).extra["scores"]
  assert not np.allclose(s0, s1)


def test_prune_lowest_removes_one_op_per_edge():
  mask = np.ones((2, 5), np.float32)
  mask[:, 0] = 0
  mask[1, 1:4] = 0                                       # edge 1 has one op left: untouched
  scores = np.array([[9., 3., 1., 2., 5.], [0., 0., 0., 0., 7.]])
  out = freedarts.prune_lowest(scores, mask)
  assert out.tolist() == [[0, 1, 0, 1, 1], [0, 0, 0, 0, 1]]


def test_freenas_prunes_iteratively_down_to_one_op_per_edge():
  res = search.search("freenas", "nb201", seed=3, **OPTS)
  assert [np.asarray(t["remaining"]).sum(1).tolist() for t in res.trace] == [
      [4] * 6, [3] * 6, [2] * 6, [1] * 6]
  last = np.asarray(res.trace[-1]["remaining"])
  assert np.array_equal(res.arch, np.argmax(last, 1))
  # each round removes the op that scored lowest among those remaining
  for before, after in zip(res.trace, res.trace[1:]):
    rem, s = np.asarray(before["remaining"]), np.asarray(before["scores"])
    gone = np.argwhere(rem - np.asarray(after["remaining"]))
    for e, k in gone:
      assert s[e, k] == np.min(np.where(rem[e] > 0, s[e], np.inf))


def test_snip_and_grasp_criteria_run_on_labelled_data():
  for crit in ("snip", "grasp"):
    res = search.search("freedarts", "nb201", seed=0, criterion=crit, batch_size=8, **OPTS)
    s = np.asarray(res.extra["scores"])
    assert np.all(np.isfinite(s)) and res.arch.shape == (6,) and np.all(res.arch > 0)
    assert res.trace[0]["objective"] > 0                 # the cross-entropy of the batch
    if crit == "snip":
      assert np.all(s >= 0)


def test_bad_options_are_named():
  with pytest.raises(JaxnasInputError, match="criterion 'synflo'.*allowed: synflow, snip, grasp"):
    search.search("freedarts", "nb201", criterion="synflo", **OPTS)
  with pytest.raises(JaxnasInputError, match="schedule"):
    search.search("freedarts", "nb201", schedule="twice", **OPTS)
