"""synflow / synflow_bn: Euler's identity and an explicit path sum on BN-free, bias-free toy
networks, the NB201 zero-cost variant (shared build) against the discrete network, and the float64
requirement."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxnas._compat import enable_x64

from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import get_proxy
from jaxnas.proxies.synflow import NO_BN, WITH_BN, synflow_score
from tests.conftest import tiny_batch_of, tiny_net
from tests.proxies.test_snip import (ARCH, discrete, discrete_weights, run_proxy, toy_apply,
                                     toy_params)

_abs64 = lambda t: jax.tree_util.tree_map(lambda a: jnp.abs(a).astype(jnp.float64), t)
_ones = lambda t: jax.tree_util.tree_map(lambda _: 1.0, t)


def test_synflow_path_sum_on_dense_toy():
  """R = sum over input->output paths of the product of |weights|; each layer's sum of
  |W dR/dW| is again the sum over paths, so the score is (number of layers) * R."""
  with enable_x64():
    ks = jax.random.split(jax.random.key(0), 3)
    shapes = ((2, 3), (3, 2), (2, 2))
    ws = [jnp.abs(jax.random.normal(k, s, jnp.float64)) for k, s in zip(ks, shapes)]
    params = {f"l{i}": {"kernel": w} for i, w in enumerate(ws)}

    def f(p):
      h = jnp.ones((1, 2), jnp.float64)
      for i in range(3):
        h = jax.nn.relu(h @ p[f"l{i}"]["kernel"])
      return h

    score = float(jax.jit(lambda p: synflow_score(f, p, _ones(p)))(params))
  w = [np.asarray(a) for a in ws]
  paths = sum(w[0][i, j] * w[1][j, k] * w[2][k, l]
              for i, j, k, l in itertools.product(range(2), range(3), range(2), range(2)))
  np.testing.assert_allclose(score, 3 * paths, rtol=1e-12)


def test_synflow_euler_identity_on_conv_toy():
  with enable_x64():
    params = _abs64(toy_params(jax.random.key(6), bias=False, bn=False))
    x = jnp.ones((1, 6, 6, 3), jnp.float64)
    f = lambda p: toy_apply(p, x)
    score = float(jax.jit(lambda p: synflow_score(f, p, _ones(p)))(params))
    r = float(jnp.sum(jax.jit(f)(params)))
  np.testing.assert_allclose(score, 4 * r, rtol=1e-12)   # 4 weight layers, each sums to R


@pytest.mark.parametrize("name,config", [("synflow", NO_BN), ("synflow_bn", WITH_BN)])
def test_synflow_nb201_equals_discrete_variant(name, config):
  batch = tiny_batch_of(2)
  net = tiny_net(ARCH)
  key = jax.random.key(11)
  with enable_x64():
    got = run_proxy(name, net, None, batch, key=key)
    x = jnp.ones((1, 8, 8, 3), jnp.float64)
    variables = _abs64(jax.jit(tiny_net(ARCH, **config).init)(key, x))
    d, vd = discrete(ARCH, variables, **config)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(d.apply({**vd, "params": p}, x))))(vd["params"])
  w, g = discrete_weights(vd["params"]), discrete_weights(grads)
  want = sum(np.sum(np.abs(np.asarray(w[k]) * np.asarray(g[k]))) for k in w)
  np.testing.assert_allclose(got, want, rtol=1e-9)
  assert want > 0


def test_synflow_requires_float64():
  batch = tiny_batch_of(1)
  net = tiny_net(ARCH)
  with pytest.raises(JaxnasInputError, match="64-bit"):
    get_proxy("synflow").fn(net, None, batch, jax.random.key(0))
