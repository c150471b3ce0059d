"""FreeFlow / FreeDARTS sensitivity: the path-polynomial structure and Euler's identity.

Without BN and with positive parameters, alpha and input, every ReLU passes its input, so
``R(t alpha)`` is a polynomial in ``t`` with non-negative coefficients, one term per input-output
path, whose degree is the number of alpha factors on the path: on the tiny network (3 cells, every
path crosses each cell through 1 to 3 edges) degrees 3..9, plus the classifier bias at degree 0.
Euler's identity then says ``sum alpha dR/dalpha = sum_n n c_n`` (methods-spec §2.3).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxnas._compat import enable_x64

from jaxnas import spaces
from jaxnas.proxies import freeflow as F
from jaxnas.spaces import nb201
from tests.conftest import TINY, tiny_batch_of


def _positive_setup(key):
  mod = nb201.model(**TINY, bn="none", cell_bn_affine=False)
  x = jnp.ones((1, 8, 8, 3), jnp.float64)
  alpha = jax.random.uniform(jax.random.fold_in(key, 1), (6, 5), jnp.float64, 0.2, 1.0)
  params = mod.init(key, x.astype(jnp.float32), alpha.astype(jnp.float32))["params"]
  params = jax.tree_util.tree_map(lambda p: jnp.abs(p).astype(jnp.float64) + 0.05, params)
  return mod, params, alpha, x


def test_flow_is_a_path_polynomial_and_euler_identity():
  with enable_x64():
    mod, params, alpha, x = _positive_setup(jax.random.key(0))
    r_of_t = jax.jit(lambda t: F.flow(mod, params, t * alpha, x))
    r0 = float(r_of_t(0.0))
    # degree 0 = paths with no alpha at all: the classifier bias
    np.testing.assert_allclose(r0, float(jnp.sum(params["classifier"]["bias"])), rtol=1e-12)
    # (R(t) - R(0)) / t^3 is a polynomial of degree 6: no path has 1 or 2 alpha factors (it would
    # add poles at t = 0) and none more than 9; its coefficients c_3..c_9 are non-negative.
    nodes = 1.0 + np.cos(np.pi * (np.arange(7) + 0.5) / 7)                   # Chebyshev in (0, 2)
    q = np.array([(float(r_of_t(t)) - r0) / t**3 for t in nodes])
    c = np.linalg.solve(np.vander(nodes, 7, increasing=True), q)             # c_3..c_9
    for t in (0.02, 0.3, 1.0, 1.7):
      np.testing.assert_allclose(r0 + t**3 * np.polyval(c[::-1], t), float(r_of_t(t)), rtol=1e-7)
    assert np.all(c > -1e-7 * np.max(np.abs(c))), c
    assert c[0] > 0                                # paths through one edge per cell exist
    # Euler: sum_k alpha_k dR/dalpha_k = sum_n n c_n
    s, r = jax.jit(lambda a: F.sensitivity(mod, params, a, x))(alpha)
    np.testing.assert_allclose(float(jnp.sum(s)), np.sum(np.arange(3, 10) * c), rtol=1e-7)
    np.testing.assert_allclose(float(r), r0 + np.sum(c), rtol=1e-9)


def test_sensitivity_matches_finite_differences():
  """dR/dalpha from autodiff against central differences (R is a polynomial: exact to h^2)."""
  with enable_x64():
    mod, params, alpha, x = _positive_setup(jax.random.key(2))
    r = jax.jit(lambda a: F.flow(mod, params, a, x))
    s, _ = jax.jit(lambda a: F.sensitivity(mod, params, a, x))(alpha)
    h = 1e-5
    for e, k in ((0, 3), (3, 1), (5, 2), (2, 4)):
      d = np.zeros((6, 5))
      d[e, k] = h
      fd = (float(r(alpha + d)) - float(r(alpha - d))) / (2 * h)
      np.testing.assert_allclose(float(s[e, k]), abs(float(alpha[e, k]) * fd), rtol=1e-6)
    # the 'none' op contributes nothing
    np.testing.assert_array_equal(np.asarray(s[:, nb201.NONE]), 0.0)


@pytest.mark.parametrize("name, x64", [("freeflow", True), ("freeflow_bn", False)])
def test_freeflow_proxy_is_the_supernet_score_at_one_hot(name, x64):
  """freeflow(arch) = sum over chosen ops of |alpha dR/dalpha| at alpha = one_hot(arch), with the
  caller's parameters made absolute and an all-ones image, on the proxy's network variant."""
  from jaxnas import engine
  from jaxnas.proxies import get_proxy
  proxy = get_proxy(name)
  assert not proxy.needs_data and proxy.higher_is_better and proxy.x64 == x64
  space = spaces.get_space("nb201")
  mod = engine.scoring.module_for(space, proxy, TINY)
  assert mod.bn == ("none" if x64 else "batch") and not mod.cell_bn_affine
  batch = tiny_batch_of(1)
  arch = nb201.from_index(9930)
  dtype = jnp.float64 if x64 else jnp.float32
  with engine.scoring.x64_context(proxy):
    net = spaces.Network(space, mod, arch)
    variables = net.init(jax.random.key(0), batch.x)
    got = float(jax.jit(lambda v: proxy.fn(net, v, batch, None))(variables))
    one_hot = jax.nn.one_hot(arch, 5, dtype=dtype)
    params = jax.tree_util.tree_map(lambda p: p.astype(dtype), variables["params"])
    s, _ = jax.jit(lambda p: F.sensitivity(mod, p, one_hot, jnp.ones((1, 8, 8, 3), dtype)))(params)
    np.testing.assert_allclose(got, float(jnp.sum(s * one_hot)), rtol=1e-6)
    assert got > 0
    # the all-none cell: the output ignores alpha, so the score is exactly 0
    dead = spaces.Network(space, mod, np.zeros(6, np.int32))
    assert float(jax.jit(lambda v: proxy.fn(dead, v, batch, None))(variables)) == 0.0


def test_a_space_without_per_edge_op_indices_is_named_in_the_error():
  """FreeFlow reads the architecture as one op index per supernet edge; a space whose encoding
  is not (DARTS: node inputs and ops) is refused by that property, not by its name."""
  from jaxnas.errors import JaxnasInputError
  from jaxnas.proxies import get_proxy
  darts = spaces.get_space("darts")
  net = spaces.Network(darts, darts.model(C=4, L=2), darts.sample(jax.random.key(0), 1)[0])
  with pytest.raises(JaxnasInputError, match=r"'darts' space has arch_shape \(2, 8, 2\)"):
    get_proxy("freeflow").fn(net, None, None, None)
