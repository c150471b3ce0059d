"""NASI: Gumbel-softmax sampling, the forward-over-reverse trace gradient, Algorithm 1 on a tiny
supernet."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import data, search
from jaxnas.errors import JaxnasInputError
from jaxnas.search import nasi
from tests.conftest import TINY


def test_gumbel_softmax_hard_is_one_hot_with_soft_gradient():
  alpha = jnp.array([[0.1, 0.5, -0.2], [1.0, 0.0, 0.3]])
  g = jax.random.gumbel(jax.random.key(0), alpha.shape)
  soft = nasi.gumbel_softmax(alpha, g, 0.7, False)
  hard = nasi.gumbel_softmax(alpha, g, 0.7, True)
  np.testing.assert_allclose(soft, jax.nn.softmax((alpha + g) / 0.7), rtol=1e-6)
  assert np.array_equal(hard, jax.nn.one_hot(jnp.argmax(alpha + g, -1), 3))
  w = jnp.arange(6.0).reshape(2, 3)
  st = jax.grad(lambda a: jnp.sum(w * nasi.gumbel_softmax(a, g, .7, True)))(alpha)
  soft_grad = jax.grad(lambda a: jnp.sum(w * nasi.gumbel_softmax(a, g, .7, False)))(alpha)
  np.testing.assert_allclose(st, soft_grad, rtol=1e-6)


class _Mixture(nn.Module):
  """A tiny 'supernet': 3 candidate layers per edge on 2 edges, mixed by ``a`` (2, 3)."""

  @nn.compact
  def __call__(self, x, a):
    x = x.reshape(x.shape[0], -1)
    for e in range(2):
      outs = [nn.Dense(6, name=f"e{e}_{k}")(x) for k in range(3)]
      x = jnp.tanh(sum(a[e, k] * outs[k] for k in range(3)))
    return nn.Dense(10)(x)


def test_trace_gradient_equals_reverse_over_reverse():
  """d||grad_theta L||^2/dalpha by forward-over-reverse equals the direct second derivative."""
  mod = _Mixture()
  batch = data.Batch(jax.random.normal(jax.random.key(1), (5, 2, 2, 3)),
                     jnp.array([0, 3, 1, 9, 2]))
  alpha = 0.3 * jax.random.normal(jax.random.key(2), (2, 3))
  g = jax.random.gumbel(jax.random.key(3), (2, 3))
  params = mod.init(jax.random.key(4), batch.x, alpha)["params"]
  for hard in (False, True):
    theta, grad = jax.jit(lambda p, a: nasi.trace_and_grad(mod, p, a, g, batch, 0.5, hard))(
        params, alpha)

    def direct(a):
      def loss(p):
        logits = mod.apply({"params": p}, batch.x, nasi.gumbel_softmax(a, g, 0.5, hard))
        return jnp.mean(-jax.nn.log_softmax(logits)[jnp.arange(5), batch.y])
      return sum(jnp.sum(v ** 2) for v in jax.tree_util.tree_leaves(jax.grad(loss)(params)))

    np.testing.assert_allclose(theta, direct(alpha), rtol=1e-5)
    np.testing.assert_allclose(grad, jax.grad(direct)(alpha), rtol=2e-4, atol=1e-7)


def test_objective_slope():
  assert nasi.objective_slope(1.0, 2.0, 3.0) == 1.0
  assert nasi.objective_slope(4.0, 2.0, 3.0) == -1.0


def test_nasi_runs_on_a_tiny_supernet_and_is_deterministic():
  kw = dict(steps=3, batch_size=8, supernet=TINY, resolution=8)
  a = search.search("nasi", "nb201", seed=1, **kw)
  b = search.search("nasi", "nb201", seed=1, **kw)
  assert np.array_equal(a.arch, b.arch) and a.extra == b.extra
  assert len(a.trace) == 3
  t = [r["trace"] for r in a.trace]
  assert all(np.isfinite(t)) and all(x > 0 for x in t)
  # adaptive nu: the running mean of the traces seen before each step
  assert a.trace[0]["nu"] == 500.0
  assert a.trace[2]["nu"] == pytest.approx(np.mean(t[:2]))
  alpha = np.asarray(a.extra["alpha"])
  assert alpha.shape == (6, 5) and np.array_equal(a.arch, np.argmax(alpha, 1))
  # alpha* = xi / T * sum_t G_t / max_{s<=t} ||G_s||: each term has norm <= 1
  assert np.linalg.norm(alpha) <= 1.0 + 1e-6
  # label-agnostic and data-agnostic variants run
  c = search.search("nasi", "nb201", seed=1, labels="random", dataset="gaussian", **kw)
  assert c.arch.shape == (6,) and not np.array_equal(c.extra["alpha"], a.extra["alpha"])


def test_bad_options_are_named():
  with pytest.raises(JaxnasInputError, match="nu_mode 'sometimes'.*adaptive, fixed"):
    search.search("nasi", "nb201", nu_mode="sometimes")
  with pytest.raises(JaxnasInputError, match="'steps'"):
    search.search("nasi", "nb201", steps=0)
