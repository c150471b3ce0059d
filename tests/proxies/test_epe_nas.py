"""EPE-NAS: the per-class aggregate against a direct port of the reference loop (numpy corrcoef,
dict of classes), the batched input Jacobian against per-example gradients (no BN) and the discrete
network, and the constant-Jacobian case."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.data import Batch
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import epe_nas, get_proxy
from jaxnas.spaces import nb201
from tests.conftest import TINY, tiny_batch_of, tiny_net


def reference_score(jacob, labels, n_classes, k=1e-5):
  """The reference ``eval_score_perclass`` written out with numpy and Python loops."""
  per_class = {}
  for i, label in enumerate(labels):
    per_class.setdefault(int(label), []).append(jacob[i])
  scores = {}
  for c, rows in per_class.items():
    if len(rows) == 1:
      if n_classes > 100:
        continue            # len() of the scalar corrcoef raises: the class is skipped
      corrs = np.corrcoef(rows[0])
    else:
      corrs = np.corrcoef(np.stack(rows))
    s = np.sum(np.log(np.abs(corrs) + k))
    if n_classes > 100:
      s /= len(corrs)
    scores[c] = s
  if n_classes <= 100:
    return sum(abs(s) for s in scores.values())
  total = sum(abs(scores[a] - scores[b]) for a in scores for b in scores)
  return total / len(scores)


@pytest.mark.parametrize("n_classes", [10, 120])
def test_score_matches_reference_loop(n_classes):
  rng = np.random.default_rng(n_classes)
  b, d = 24, 50
  base = rng.normal(size=(1, d))
  jac = (0.7 * base + rng.normal(size=(b, d))).astype(np.float32)     # correlated rows
  labels = rng.integers(0, 6, size=b)
  labels[0] = 9                                                        # a singleton class
  got = float(jax.jit(epe_nas.score_per_class, static_argnums=2)(jac, labels, n_classes))
  ref = reference_score(jac.astype(np.float64), labels, n_classes)
  np.testing.assert_allclose(got, ref, rtol=1e-4)
  assert got > 0


def test_constant_jacobian_rows_count_as_fully_correlated():
  labels = np.array([0, 0, 0, 1, 1, 2])
  jac = np.zeros((6, 10), np.float32)                                 # output ignores the input
  got = float(epe_nas.score_per_class(jac, labels, 10))
  np.testing.assert_allclose(got, (9 + 4 + 1) * np.log(1 + 1e-5), rtol=0, atol=1e-6)


def test_input_jacobian_without_bn_is_per_example():
  b = tiny_batch_of(6)
  net = tiny_net(nb201.from_index(180), bn="none")
  v = jax.jit(net.init)(jax.random.key(0), b.x)
  jac, n_out = jax.jit(lambda v, x: epe_nas.input_jacobian(net, v, x))(v, b.x)
  assert n_out == 10
  one = lambda xi: jnp.sum(net.apply(v, xi[None]))
  ref = jax.jit(jax.vmap(jax.grad(one)))(b.x).reshape(6, -1)
  np.testing.assert_allclose(jac, ref, rtol=1e-4, atol=1e-6)


def test_proxy_end_to_end_against_discrete_network_and_reference():
  b = tiny_batch_of(16)
  a = nb201.from_index(180)
  net = tiny_net(a)
  v = jax.jit(net.init)(jax.random.key(0), b.x)
  proxy = get_proxy("epe_nas")
  assert proxy.needs_labels
  got = float(jax.jit(lambda v, b: proxy.fn(net, v, b, None))(v, b))
  # batch-statistics BN couples the samples: J is the gradient of the batch's logit sum, here taken
  # through the discrete network of the same architecture
  disc = nb201.NB201Net(fixed_arch=tuple(a), **TINY)
  vd = {k: nb201.discrete_params(t, a) for k, t in v.items()}
  jac = jax.jit(jax.grad(lambda x: jnp.sum(disc.apply(vd, x))))(b.x).reshape(16, -1)
  ref = reference_score(np.asarray(jac, np.float64), np.asarray(b.y), 10)
  np.testing.assert_allclose(got, ref, rtol=1e-4)
  with pytest.raises(JaxnasInputError, match="label"):
    proxy.fn(net, v, Batch(b.x, None), None)
