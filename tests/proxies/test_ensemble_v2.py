"""ensemble_v2 / ensemble_v2_fwd: weighted log-rank sums over a pool, against a direct formula."""

import json

import numpy as np
import pytest
import scipy.stats

from jaxnas import _assets, engine, proxies
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import _pool, ensemble_v2
from jaxnas.spaces import nb201
from tests.conftest import TINY, tiny_batch_of


def spec_of(asset):
  with open(_assets.path(asset), encoding="utf-8") as f:
    return json.load(f)


def test_log_ranks_direct_formula_with_ties_and_degenerates():
  v = np.array([3.0, np.nan, 1.0, 3.0, -np.inf, _pool.DEGENERATE, 7.0])
  got = _pool.log_ranks(v)
  bottom = np.array([3.0, -np.inf, 1.0, 3.0, -np.inf, -np.inf, 7.0])   # NaN/degenerate -> -inf
  np.testing.assert_allclose(got, np.log(scipy.stats.rankdata(bottom) / 7))
  assert got[6] == 0.0 and got[1] == got[4] == got[5] == np.log(2 / 7)  # 3 tied at the bottom
  with pytest.raises(JaxnasInputError, match="1-D"):
    _pool.log_ranks(np.ones((2, 2)))


@pytest.mark.parametrize("asset", ensemble_v2.ASSETS)
def test_registered_from_the_asset_and_equal_to_the_direct_sum(asset):
  spec = spec_of(asset)
  assert ensemble_v2.coefficients(spec["name"]) == spec
  pooled = proxies.get_pooled(spec["name"])
  assert pooled.components == tuple(m["name"] for m in spec["members"])
  assert abs(sum(m["weight"] for m in spec["members"]) - 1) < 1e-9
  assert spec["fit"]["target"].startswith("cifar100_test200")       # never fitted on CIFAR-10
  rng = np.random.default_rng(0)
  scores = {c: rng.normal(size=50) for c in pooled.components}
  direct = sum(m["weight"] * np.log(scipy.stats.rankdata(
      scores[m["name"]] * (1 if proxies.get_proxy(m["name"]).higher_is_better else -1)) / 50)
      for m in spec["members"])
  np.testing.assert_allclose(proxies.apply_pooled(spec["name"], scores), direct, rtol=1e-12)
  # invariant to an increasing transform of any member (a rank combination)
  first = pooled.components[0]
  moved = {**scores, first: np.exp(scores[first])}
  np.testing.assert_allclose(proxies.apply_pooled(spec["name"], moved), direct, rtol=1e-12)


def test_coefficients_names_the_allowed_ensembles():
  with pytest.raises(JaxnasInputError, match="unknown ensemble 'v3'; allowed: ensemble_v2, "
                                             "ensemble_v2_fwd"):
    ensemble_v2.coefficients("v3")


def test_a_lower_is_better_member_is_negated():
  spec = {"name": "x", "members": [{"name": "params", "weight": 1.0}]}
  lower = proxies.get_proxy("params")._replace(higher_is_better=False)
  v = np.array([1.0, 2.0, 3.0])
  np.testing.assert_allclose(ensemble_v2.combine({"params": v}, spec), np.log([1 / 3, 2 / 3, 1]))
  import unittest.mock as mock
  with mock.patch.object(ensemble_v2, "get_proxy", lambda n: lower):
    np.testing.assert_allclose(ensemble_v2.combine({"params": v}, spec, oriented=False),
                               np.log([1, 2 / 3, 1 / 3]))
  with pytest.raises(JaxnasInputError, match="needs scores of 'params'"):
    ensemble_v2.combine({"flops": v}, spec)


def test_through_the_engine_on_a_tiny_network():
  name = spec_of("ensemble_v2_fwd.json")["name"]
  archs = nb201.from_index(np.array([0, 3, 1459, 6111, 9930, 15624]))
  res = engine.score("nb201", archs, [name], tiny_batch_of(8), config=TINY)
  comps = proxies.get_pooled(name).components
  np.testing.assert_allclose(res[name], proxies.apply_pooled(name, {c: res[c] for c in comps}))
  assert np.all(np.isfinite(res[name])) and np.all(res[name] <= 0)
