"""NASI's estimate ||mean grad CE||^2 and its label/data-agnostic variants.

Independent reference: the forward-mode directional derivative of the loss along the proxy's own
gradient g equals ||g||^2 (``jax.jvp`` vs the reverse-mode gradient), and the variants equal the
base estimate on the batch they draw from the key.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas import data
from jaxnas.proxies import get_proxy
from jaxnas.proxies.nasi import sq_grad_norm
from tests.conftest import tiny_batch_of, tiny_net


def test_nasi_is_squared_norm_of_the_batch_gradient_and_variants_use_their_batches():
  batch = tiny_batch_of(8)
  net = tiny_net(np.array([3, 1, 2, 4, 3, 1]))

  def loss(v, p, x, y):
    logits = net.apply({**v, "params": p}, x)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

  def fn(b, key):
    v = net.init(jax.random.key(0), b.x)
    s = {n: get_proxy(n).fn(net, v, b, key) for n in ("nasi", "nasi_random_labels",
                                                      "nasi_gaussian")}
    g = jax.grad(loss, argnums=1)(v, v["params"], b.x, b.y)
    _, along = jax.jvp(lambda p: loss(v, p, b.x, b.y), (v["params"],), (g,))
    y_rand = jax.random.randint(key, (8,), 0, 10, jnp.int32)
    z = jax.random.normal(key, b.x.shape)
    return s, along, sq_grad_norm(net, v, b.x, y_rand), sq_grad_norm(net, v, z, b.y)

  s, along, rand_ref, gauss_ref = jax.jit(fn)(batch, jax.random.key(4))
  np.testing.assert_allclose(s["nasi"], along, rtol=1e-4)
  np.testing.assert_allclose(s["nasi_random_labels"], rand_ref, rtol=1e-6)
  np.testing.assert_allclose(s["nasi_gaussian"], gauss_ref, rtol=1e-6)
  assert len({float(v) for v in s.values()}) == 3


def test_registration():
  assert get_proxy("nasi").needs_labels and get_proxy("nasi_gaussian").needs_labels
  assert not get_proxy("nasi_random_labels").needs_labels
  assert all(get_proxy(n).higher_is_better for n in ("nasi", "nasi_random_labels",
                                                      "nasi_gaussian"))
  assert data.Batch is not None
