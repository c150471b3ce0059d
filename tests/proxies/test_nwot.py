"""NASWOT: the kernel against binary codes captured from the discrete network (numpy formula), its
diagonal against an independent count of ReLU units, the log-determinant against numpy float64,
and the singular-kernel floor."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import spaces
from jaxnas.data import Batch
from jaxnas.proxies import get_proxy, nwot
from jaxnas.spaces import nb201
from tests.conftest import TINY, tiny_batch_of


def relu_inputs(arch, variables, x, **config):
  """Every ReLU input of the *discrete* NB201 network of ``arch`` (with multiplicity), as numpy.

  Independent of the shared build and of the probe summation: a ``jax.debug.callback`` inside
  the probe copies each ReLU input out of the (jitted) discrete forward pass.
  """
  a = nb201.encode(arch)
  seen = []

  def probe(h):
    jax.debug.callback(lambda v: seen.append(np.asarray(v)), h)
    return jnp.zeros((), h.dtype)

  disc = nb201.NB201Net(fixed_arch=tuple(int(i) for i in a), relu_probe=probe,
                        **{**TINY, **config})
  vd = {k: nb201.discrete_params(t, a) for k, t in variables.items()}
  out = jax.jit(lambda v, x: disc.apply(v, x, mutable=["intermediates"])[1])(vd, x)
  jax.block_until_ready(out)
  return seen


def relu_unit_count(arch, C=4, N=1, res=8):
  """N_A: ReLU units per sample of the NB201 network (cell convs, reductions, head)."""
  a = nb201.encode(arch)
  convs = int(np.sum((a == 2) | (a == 3)))
  total = 0
  for s in range(3):
    c, r = C * 2**s, res // 2**s
    total += convs * N * r * r * c
  total += res * res * C + (res // 2) ** 2 * 2 * C          # reduction 1: conv_a, conv_b inputs
  total += (res // 2) ** 2 * 2 * C + (res // 4) ** 2 * 4 * C  # reduction 2
  total += (res // 4) ** 2 * 4 * C                           # head ReLU
  return total


@functools.lru_cache(maxsize=None)
def _shared_fns():
  net = spaces.network("nb201", np.zeros(6, np.int32), **TINY)

  def kernel(variables, x, arch):
    return nwot.kernel(net._replace(arch=arch), variables, x)

  def score(variables, x, arch):
    batch = Batch(x, jnp.zeros(x.shape[0], jnp.int32))
    return get_proxy("nwot").fn(net._replace(arch=arch), variables, batch, None)

  return net, jax.jit(kernel), jax.jit(score)


def _variables(x):
  net = nb201.NB201Net(**TINY)
  return jax.jit(net.init)(jax.random.key(0), x, jnp.zeros(6, jnp.int32))


def test_kernel_against_codes_of_discrete_network_relu_count_and_singular_floor():
  b = tiny_batch_of(12)
  v = _variables(b.x)
  _, kernel, score = _shared_fns()
  # 180: a cell with nor_conv_3x3, nor_conv_1x1, avg_pool and none edges
  for idx in (180,):
    a = nb201.from_index(idx)
    codes = [(h.reshape(h.shape[0], -1) > 0).astype(np.float64)
             for h in relu_inputs(a, v, b.x)]
    ref = sum(c @ c.T + (1 - c) @ (1 - c).T for c in codes)
    k = np.asarray(kernel(v, b.x, a))
    np.testing.assert_array_equal(k, ref)     # integers, exact in float32
    np.testing.assert_array_equal(np.diagonal(k), relu_unit_count(a))
    # end to end: the proxy is numpy's float64 log|det K|
    sign, logdet = np.linalg.slogdet(ref)
    assert sign != 0
    np.testing.assert_allclose(float(score(v, b.x, a)), logdet, rtol=2e-4)
  # a duplicated image has the same codes as its twin under batch-statistics BN: K is singular and
  # the score takes its floor, 0 (the reference's -inf)
  x = b.x.at[3].set(b.x[5])
  k = np.asarray(kernel(v, x, a))
  np.testing.assert_array_equal(k[3], k[5])
  assert float(score(v, x, a)) == 0.0


def test_log_abs_det_against_numpy_float64():
  rng = np.random.default_rng(0)
  for b, d in ((8, 40), (16, 300), (64, 5000)):
    c = (rng.random((b, d)) > 0.5).astype(np.float64)
    k = c @ c.T + (1 - c) @ (1 - c).T
    ref = np.linalg.slogdet(k)[1]
    got = float(jax.jit(nwot.log_abs_det)(jnp.asarray(k, jnp.float32)))
    np.testing.assert_allclose(got, ref, rtol=1e-4)
    assert got > 0
  # singular kernels (two identical codes; a rank-one kernel) take the floor 0, not -inf
  c[1] = c[0]
  k = c @ c.T + (1 - c) @ (1 - c).T
  assert np.linalg.slogdet(k)[0] == 0
  assert float(jax.jit(nwot.log_abs_det)(jnp.asarray(k, jnp.float32))) == 0.0
  assert float(nwot.log_abs_det(jnp.full((5, 5), 7.0))) == 0.0
