"""Proxy-guided random search and regularised evolution on tiny networks."""

import numpy as np
import pytest

from jaxnas import engine, search
from jaxnas.errors import JaxnasInputError
from jaxnas.search import sampling
from jaxnas.spaces import get_space, nb201
from tests.conftest import TINY, tiny_batch_of

OPTS = dict(config=TINY, resolution=8)


def test_random_returns_the_best_of_its_sample_and_is_deterministic():
  a = search.search("random", "nb201", seed=4, proxy="params", n=40, **OPTS)
  b = search.search("random", "nb201", seed=4, proxy="params", n=40, **OPTS)
  assert np.array_equal(a.arch, b.arch) and a.trace == b.trace
  c = search.search("random", "nb201", seed=5, proxy="params", n=40, **OPTS)
  assert c.trace != a.trace
  # the winner has the largest parameter count of the 40 sampled (independent count)
  best = max(a.trace, key=lambda r: r["score"])
  assert best["index"] == nb201.to_index(a.arch) and a.trace[0] == best
  assert a.trace[0]["score"] == pytest.approx(nb201.count_params(a.arch, **TINY) / 1e6, rel=1e-6)
  assert a.extra["n_scored"] == 40 and a.extra["n_nonfinite"] == 0


def test_random_over_the_whole_space_finds_the_optimum_of_a_lower_is_better_proxy(monkeypatch):
  """With n = 15625 the search sees every architecture; a lower-is-better proxy is minimised."""
  from jaxnas.proxies import get_proxy
  base = get_proxy("params")
  flipped = base._replace(name="params_low", higher_is_better=False)
  monkeypatch.setattr(sampling, "get_proxy", lambda name: flipped)
  res = search.search("random", "nb201", seed=0, proxy="params_low", n=15625, chunk_size=4096,
                      **OPTS)
  counts = nb201.count_params(nb201.all_archs(), **TINY)
  assert nb201.count_params(res.arch, **TINY) == counts.min()


def test_scorer_matches_engine_and_caches():
  space = get_space("nb201")
  import jax
  key = jax.random.key(0)
  opts = dict(search.resolve_options(search.get_method("random"), dict(proxy="params", **OPTS)))
  scorer = sampling.Scorer(space, "params", key, opts)
  archs = nb201.from_index(np.array([5, 77, 9930, 5]))
  got = scorer(archs)
  want = engine.score(space, archs, ["params"], tiny_batch_of(1), config=TINY)["params"]
  np.testing.assert_allclose(got, want, rtol=1e-6)
  assert len(scorer.cache) == 3
  assert np.array_equal(scorer.fitness([1.0, np.nan]), [1.0, -np.inf])


def test_rea_improves_on_its_population_and_is_deterministic():
  kw = dict(proxy="params", n=60, population=12, sample_size=4, **OPTS)
  a = search.search("rea", "nb201", seed=2, **kw)
  b = search.search("rea", "nb201", seed=2, **kw)
  assert np.array_equal(a.arch, b.arch) and a.trace == b.trace
  assert len(a.trace) == 1 + 60 - 12
  best = [t["best_score"] for t in a.trace]
  assert all(x <= y for x, y in zip(best, best[1:]))          # best-so-far never decreases
  assert best[-1] > best[0]                                   # evolution found a larger network
  assert a.extra["best_score"] == pytest.approx(nb201.count_params(a.arch, **TINY) / 1e6)


def test_rea_and_random_input_errors():
  with pytest.raises(JaxnasInputError, match="needs a proxy"):
    search.search("random", "nb201", n=5, **OPTS)
  with pytest.raises(JaxnasInputError, match="sample_size"):
    search.search("rea", "nb201", proxy="params", n=20, population=4, sample_size=5, **OPTS)
  with pytest.raises(JaxnasInputError, match="exceeds"):
    search.search("random", "nb201", proxy="params", n=20000, **OPTS)


def test_scorer_pads_a_remainder_to_a_power_of_two_only():
  """A lone child (evolution) is scored in a call of size 1, not padded to the chunk; the values
  do not depend on how the architectures were grouped."""
  import jax
  space = get_space("nb201")
  opts = dict(search.resolve_options(search.get_method("random"),
                                     dict(proxy="params", chunk_size=16, **OPTS)))
  scorer = sampling.Scorer(space, "params", jax.random.key(0), opts)
  sizes = []
  fn = scorer.fn
  scorer.fn = lambda a, *rest: (sizes.append(len(a)), fn(a, *rest))[1]
  archs = nb201.from_index(np.array([3, 50, 700, 9000, 15000, 123]))
  together = scorer(archs[:5])
  alone = scorer(archs[5:])
  assert sizes == [8, 1]
  assert [sampling._padded(n, 16) for n in (1, 2, 3, 5, 9, 16, 17)] == [1, 2, 4, 8, 16, 16, 16]
  want = engine.score(space, archs, ["params"], tiny_batch_of(1), config=TINY)["params"]
  np.testing.assert_allclose(np.concatenate([together, alone]), want, rtol=1e-6)
