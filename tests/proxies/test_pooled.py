"""Pool-relative scores: registry, engine, files, CLI and searches apply the combination over the set.

A test-only pooled score over two cheap proxies (``params``, ``flops``) checks the plumbing; one
test runs the real ``aznas`` through the engine on a tiny network.
"""


import numpy as np
import pytest
import scipy.stats

from jaxnas import cli, engine, proxies
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import aznas, registry
from jaxnas.spaces import nb201
from tests.conftest import TINY, tiny_batch_of

NAME = "_test_rank_sum"
COMPONENTS = ("params", "flops")


def rank_sum(scores):
  """Test pool: sum of the components' ranks minus the pool size (so a value changes with it)."""
  n = len(next(iter(scores.values())))
  return sum(scipy.stats.rankdata(v) for v in scores.values()) - n


@pytest.fixture
def pooled_name():
  registry.load_all()
  registry.register_pooled(NAME, components=COMPONENTS)(rank_sum)
  yield NAME
  registry._POOLED.pop(NAME)


def direct(scores, idx):
  """The test pool over the architectures ``idx`` from their per-architecture scores."""
  return rank_sum({c: np.asarray(scores[c])[idx] for c in COMPONENTS})


ARCHS = nb201.from_index(np.array([0, 11, 777, 5000, 15624]))
BATCH = tiny_batch_of(4)


def test_registry_expands_and_refuses(pooled_name):
  assert pooled_name in proxies.list_pooled() and pooled_name not in proxies.list_proxies()
  assert proxies.expand(["nwot", pooled_name, "flops"]) == ["nwot", "params", "flops"]
  assert proxies.expand(["aznas"]) == list(aznas.COMPONENTS)
  with pytest.raises(JaxnasInputError, match="pool-relative"):
    proxies.get_proxy(pooled_name)
  with pytest.raises(JaxnasInputError, match=r"unknown proxy 'nope'.*aznas"):
    proxies.expand(["nope"])
  with pytest.raises(ValueError, match="already registered"):
    registry.register_pooled("nwot", components=COMPONENTS)(rank_sum)
  with pytest.raises(ValueError, match="already registered"):
    registry.register(pooled_name)(lambda *a: 0.0)
  with pytest.raises(ValueError, match="distinct components"):
    registry.register_pooled("_x", components=("params", "params"))(rank_sum)
  with pytest.raises(JaxnasInputError, match="needs the scores of flops"):
    proxies.apply_pooled(pooled_name, {"params": np.ones(3)})
  with pytest.raises(JaxnasInputError, match="same candidates"):
    proxies.apply_pooled(pooled_name, {"params": np.ones(3), "flops": np.ones(4)})


def test_with_pooled_ranks_over_the_ids_every_component_scored(pooled_name):
  scores = {"params": (np.array([5, 1, 9, 3]), np.array([4.0, 1.0, 2.0, 3.0])),
            "flops": (np.array([1, 3, 5]), np.array([30.0, 10.0, 20.0])),
            "nwot": (np.array([1]), np.array([0.5]))}
  out = proxies.with_pooled(scores)
  ids, vals = out[pooled_name]
  np.testing.assert_array_equal(ids, [1, 3, 5])           # 9 lacks flops: not in the pool
  np.testing.assert_allclose(vals, rank_sum({"params": [1.0, 3.0, 4.0],
                                             "flops": [30.0, 10.0, 20.0]}))
  assert out["nwot"] is scores["nwot"]
  assert "aznas" not in out                               # its components are absent: skipped
  with pytest.raises(JaxnasInputError, match="az_expressivity"):
    proxies.with_pooled(scores, ["aznas"])                # asked for explicitly: an error


def test_engine_score_applies_the_pool_to_the_call(pooled_name):
  res = engine.score("nb201", ARCHS, [pooled_name, "params"], BATCH, config=TINY)
  assert set(res) == {pooled_name, *COMPONENTS}
  np.testing.assert_allclose(res[pooled_name], direct(res, slice(None)))
  sub = engine.score("nb201", ARCHS[:3], [pooled_name], BATCH, config=TINY)
  np.testing.assert_allclose(sub[pooled_name], direct(res, slice(0, 3)))   # another pool


def test_file_holds_components_and_correlate_ranks_over_it(pooled_name, tmp_path, capsys):
  out = tmp_path / "s.csv"
  argv = ["score", "--proxies", pooled_name, "--archs", "0,11,777,5000,15624", "--config",
          "C=4,N=1", "--resolution", "8", "--out", str(out), "--no-progress"]
  assert cli.main(argv) == 0
  printed = capsys.readouterr().out
  assert "over the 5 architectures of this run" in printed and pooled_name in printed
  _, loaded = engine.load(str(out))
  assert sorted(loaded) == sorted(COMPONENTS)               # never the pooled value
  assert cli.main(["correlate", "--scores", str(out)]) == 0
  table = capsys.readouterr().out
  assert pooled_name in table and "params" in table
  assert cli.main(["correlate", "--scores", str(out), "--pooled", "none"]) == 0
  assert pooled_name not in capsys.readouterr().out
  assert cli.main(["correlate", "--scores", str(out), "--pooled", "nope"]) == 2


def test_random_search_ranks_over_its_draws(pooled_name):
  from jaxnas import search
  res = search.search("random", "nb201", seed=3, proxy=pooled_name, n=10, resolution=8,
                      config={"C": 4, "N": 1})
  idx = np.array([r["index"] for r in res.trace])             # n = 10: the trace holds every draw
  per = engine.score("nb201", nb201.from_index(idx), list(COMPONENTS), BATCH, config=TINY)
  np.testing.assert_allclose([r["score"] for r in res.trace], direct(per, slice(None)))
  assert nb201.decode(res.arch) == res.trace[0]["arch"] == nb201.decode(
      nb201.from_index(idx[np.argmax(direct(per, slice(None)))]))


@pytest.mark.parametrize("method", ["random", "rea"])
def test_a_pool_independent_pooled_score_searches_like_its_proxy(method):
  """A pooled score that is one component's own value: the pooled path (re-ranking the
  population after every child, the best of the final pool) must find what the proxy finds."""
  from jaxnas import search
  registry.load_all()
  registry.register_pooled("_test_identity", components=("params",))(lambda s: s["params"])
  try:
    opts = dict(n=20, resolution=8, config={"C": 4, "N": 1})
    if method == "rea":
      opts.update(population=6, sample_size=3)
    a = search.search(method, "nb201", seed=1, proxy="_test_identity", **opts)
    b = search.search(method, "nb201", seed=1, proxy="params", **opts)
  finally:
    registry._POOLED.pop("_test_identity")
  np.testing.assert_array_equal(a.arch, b.arch)
  assert [t.get("best_score", t.get("score")) for t in a.trace] == \
         [t.get("best_score", t.get("score")) for t in b.trace]


def test_aznas_through_the_engine_is_the_aggregate_of_its_components():
  res = engine.score("nb201", ARCHS[:4], ["aznas"], BATCH, config=TINY)
  np.testing.assert_allclose(res["aznas"], aznas.aggregate({c: res[c] for c in aznas.COMPONENTS}))
  assert np.all(np.isfinite(res["aznas"])) and np.all(res["aznas"] <= 0)
