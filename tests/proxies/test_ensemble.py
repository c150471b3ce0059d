"""``ensemble``: equals the formula applied to its members' stand-alone scores."""

import jax
import numpy as np
import pytest
from jaxnas._compat import enable_x64

from jaxnas import spaces
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import ensemble as E
from jaxnas.proxies import get_proxy
from jaxnas.spaces import nb201
from tests.conftest import TINY, tiny_batch_of


def test_combine_is_the_documented_formula():
  spec = {"members": [{"name": "a", "transform": "log", "mean": 1.0, "std": 2.0, "weight": 0.5},
                      {"name": "b", "transform": "identity", "mean": -1.0, "std": 4.0,
                       "weight": -2.0}]}
  a, b = np.array([1.0, np.e ** 3, 1e300]), np.array([3.0, -1.0, 0.0])
  want = 0.5 * (np.log(a) - 1.0) / 2.0 - 2.0 * (b + 1.0) / 4.0
  np.testing.assert_allclose(E.combine({"a": a, "b": b}, spec), want, rtol=1e-12)
  with pytest.raises(JaxnasInputError, match="needs scores of 'b'"):
    E.combine({"a": a}, spec)


def test_fitted_coefficients_are_finite_and_name_registered_proxies():
  spec = E.coefficients()
  assert spec["members"]
  for m in spec["members"]:
    get_proxy(m["name"])
    assert np.isfinite([m["mean"], m["std"], m["weight"]]).all() and m["std"] > 0


@pytest.mark.parametrize("index", [180, 9930])
def test_ensemble_equals_combination_of_standalone_members(index):
  batch = tiny_batch_of(16)
  space = spaces.get_space("nb201")
  arch = nb201.from_index(index)
  key = jax.random.key(5)
  k_init, k_proxy = jax.random.split(key)
  module = space.model(**TINY)
  net = spaces.Network(space, module, arch)
  variables = net.init(k_init, batch.x)
  with enable_x64():
    got = float(jax.jit(lambda v: get_proxy("ensemble").fn(net, v, batch, k_proxy))(variables))
    members = {}
    for m in E.coefficients()["members"]:
      p = get_proxy(m["name"])
      n = net.replace(**dict(p.config)) if p.config else net
      members[m["name"]] = np.array([float(p.fn(n, variables if p.needs_variables else None,
                                                batch, k_proxy))])
  assert np.isfinite(got)
  np.testing.assert_allclose(got, E.combine(members)[0], rtol=1e-5, atol=1e-6)


def test_engine_ensemble_equals_combination_of_engine_scored_members():
  """Through the engine (which traces ``ensemble`` with 64-bit floats on), the members see the
  same networks as when scored on their own: the engine draws every proxy's weights as float32
  (``ops.float32_draws``); without it the float64 draws would give nwot other weights."""
  from jaxnas import engine
  batch = tiny_batch_of(16)
  archs = nb201.from_index(np.array([180, 9930, 15624]))
  names = [m["name"] for m in E.coefficients()["members"]]
  got = engine.score("nb201", archs, ["ensemble"] + names, batch, seed=3, config=TINY)
  np.testing.assert_allclose(got["ensemble"], E.combine({n: got[n] for n in names}),
                             rtol=1e-9, atol=1e-12)


def test_float32_draws_give_x64_initialisation_the_float32_weights():
  space = spaces.get_space("nb201")
  net = spaces.Network(space, space.model(**TINY), nb201.from_index(180))
  x = tiny_batch_of(4).x
  want = net.init(jax.random.key(1), x)["params"]
  with enable_x64():
    plain = net.init(jax.random.key(1), x)["params"]
    with spaces.ops.float32_draws():
      forced = net.init(jax.random.key(1), x)["params"]
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                         want, forced)
  diffs = jax.tree_util.tree_leaves(jax.tree_util.tree_map(
      lambda a, b: float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))),
      want, plain))
  assert max(diffs) > 1e-3  # what the context prevents: float64 draws are other weights
