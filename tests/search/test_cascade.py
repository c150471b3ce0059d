"""Cascade search: stages of proxies, cheapest first, on tiny networks."""

import numpy as np
import pytest

from jaxnas import benchmarks, engine, search
from jaxnas.errors import JaxnasInputError
from jaxnas.search import cascade
from jaxnas.spaces import get_space, nb201
from tests.conftest import TINY, tiny_batch_of

OPTS = dict(config=TINY, resolution=8)


def test_parse_stages():
  st = cascade.parse_stages("params:300, synflow@8:10,zen:1")
  assert st == [cascade.Stage("params", None, 300), cascade.Stage("synflow", 8, 10),
                cascade.Stage("zen", None, 1)]
  assert cascade.parse_stages("aznas:5")[0].proxy == "aznas"   # pool-relative scores allowed


@pytest.mark.parametrize("spec, words", [
    ("", "proxy[@resolution]:keep"),
    ("params", "'params'"),
    ("params:x", "'params:x'"),
    ("nope:3", "'nope'"),
    ("params:0", "at least 1"),
    ("synflow@7:3", "divide 32"),
])
def test_bad_stages_name_the_bad_part(spec, words):
  with pytest.raises(JaxnasInputError, match="(?s)" + words.replace("[", r"\[").replace("]", r"\]")):
    cascade.parse_stages(spec)


def test_keep_best_keeps_ties_at_the_cut_in_input_order():
  f = np.array([1.0, 5.0, 3.0, 3.0, 3.0, -np.inf, 4.0])
  assert cascade.keep_best(f, 2).tolist() == [1, 6]
  assert cascade.keep_best(f, 3).tolist() == [1, 6, 2, 3, 4]   # all three 3.0 survive
  assert cascade.keep_best(f, 10).tolist() == [1, 6, 2, 3, 4, 0, 5]


def _params(archs):
  return np.asarray(nb201.count_params(np.asarray(archs), **TINY), np.float64)


def test_whole_space_cascade_equals_an_independent_filter():
  """params keeps the 40 largest (with ties) of all 15,625, then l2_norm picks one: the same as
  filtering the exact parameter counts and scoring the survivors with the engine directly."""
  res = search.search("cascade", "nb201", seed=3, stages="params:40,l2_norm:1", chunk_size=512,
                      **OPTS)
  counts = _params(nb201.all_archs())
  cut = np.sort(counts)[::-1][39]
  survivors = np.flatnonzero(counts >= cut)
  t0, t1 = res.trace
  assert t0["candidates"] == 15625 and t0["kept"] == len(survivors) >= 40
  assert t1["candidates"] == len(survivors) and t1["kept"] == 1
  # the l2_norm stage: its argmax over the survivors, scored with the stage's key (the search
  # key's second half folded with the stage number, split into data and scoring keys)
  import jax
  from jaxnas.proxies import get_proxy
  k_stage = jax.random.fold_in(jax.random.split(jax.random.key(3))[1], 1)
  fn = engine.make_score_fn(get_space("nb201"), get_proxy("l2_norm"), TINY, "map")
  n = len(survivors)
  pad = -n % 8
  ids = np.concatenate([survivors, np.repeat(survivors[-1:], pad)]).astype(np.int32)
  got = np.asarray(fn(nb201.from_index(ids), ids, tiny_batch_of(1), jax.random.split(k_stage)[1]))
  assert nb201.to_index(res.arch) == survivors[int(np.argmax(got[:n]))]
  assert res.trace[1]["best"][0]["score"] == pytest.approx(float(got[:n].max()), rel=1e-5)
  assert res.queries == 0 and res.extra["n_scored"] == 15625 + len(survivors)
  again = search.search("cascade", "nb201", seed=3, stages="params:40,l2_norm:1",
                        chunk_size=512, **OPTS)
  assert np.array_equal(again.arch, res.arch) and again.trace[1]["best"] == t1["best"]


def test_hybrid_returns_the_best_observed_of_the_queried():
  res = search.search("cascade", "nb201", seed=0, n=200, stages="params:6", queries=4,
                      chunk_size=64, **OPTS)
  q = res.trace[-1]["queried"]
  assert res.queries == 4 == len(q)
  obs = [benchmarks.accuracy(r["index"], "cifar10valid_val12") for r in q]
  assert [r["observed"] for r in q] == pytest.approx(obs)
  assert nb201.to_index(res.arch) == q[int(np.argmax(obs))]["index"]
  # the queried are the four largest networks of the 200 drawn (ties kept in draw order)
  drawn = nb201.to_index(search.sampling._draw(
      get_space("nb201"), __import__("jax").random.split(__import__("jax").random.key(0))[0], 200))
  counts = _params(nb201.from_index(drawn))
  assert sorted(counts[np.isin(drawn, [r["index"] for r in q])]) == sorted(
      np.sort(counts)[::-1][:4])


def test_cascade_errors():
  with pytest.raises(JaxnasInputError, match="queries=5 exceeds .* last stage keeps \\(3\\)"):
    search.search("cascade", "nb201", stages="params:3", queries=5, **OPTS)
  with pytest.raises(JaxnasInputError, match="'n' must be 0"):
    search.search("cascade", "nb201", stages="params:3", n=-1, **OPTS)
  with pytest.raises(JaxnasInputError, match="benchmark metric"):
    search.search("cascade", "nb201", stages="params:3", queries=1, observed="cifar10_bogus",
                  **OPTS)
