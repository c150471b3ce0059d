"""``ensemble``: equals the formula applied to its members' stand-alone scores."""

import jax
import numpy as np
import pytest
from jax.experimental import enable_x64

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
