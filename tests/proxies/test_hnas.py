"""HNAS' M_trace and condition number from per-sample shares (autograd-hacks semantics).

References: without BN the shares are ordinary per-sample gradients (``vmap`` of ``grad``); with
batch-statistics BN the shared (scan/switch) build must give the same kernel as the discrete build
(plain convolutions, another code path), and the shares must add up to the batch gradient.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import spaces
from jaxnas.ntk import empirical
from jaxnas.proxies import get_proxy
from jaxnas.proxies.hnas import hnas_kernel
from jaxnas.spaces import nb201
from jaxnas.spaces import params as P
from jaxnas.spaces.nb201 import NB201Net
from tests.conftest import TINY, tiny_batch_of, tiny_net

ARCH = np.array([3, 1, 2, 4, 3, 1])


def test_without_bn_m_trace_is_rms_per_sample_gradient_norm():
  batch = tiny_batch_of(8)
  net = tiny_net(ARCH, bn="none")

  def fn(b):
    v = net.init(jax.random.key(0), b.x)
    score = get_proxy("hnas_trace").fn(net, v, b, None)
    apply_fn, chosen = empirical.network_apply(
        net, v, P.select(v["params"], P.WEIGHTS_AND_BIASES))
    g = jax.vmap(lambda x, y: jax.grad(lambda p: apply_fn(p, x[None])[0, y])(chosen))(b.x, b.y)
    sq = sum(jnp.sum(jnp.square(a.reshape(8, -1)), 1) for a in jax.tree_util.tree_leaves(g))
    return score, jnp.sqrt(jnp.mean(sq))

  score, ref = jax.jit(fn)(batch)
  np.testing.assert_allclose(score, ref, rtol=1e-5)


def test_batch_bn_shared_build_equals_discrete_build_and_cond():
  batch = tiny_batch_of(8)
  net = tiny_net(ARCH)
  disc = spaces.Network(spaces.get_space("nb201"),
                        NB201Net(**TINY, fixed_arch=tuple(int(a) for a in ARCH)), None)

  def fn(b):
    v = net.init(jax.random.key(0), b.x)
    vd = {k: nb201.discrete_params(t, ARCH) for k, t in v.items()}
    return (hnas_kernel(net, v, b), hnas_kernel(disc, vd, b),
            get_proxy("hnas_trace").fn(net, v, b, None), get_proxy("hnas_cond").fn(net, v, b, None))

  theta, theta_d, m_trace, cond = jax.jit(fn)(batch)
  np.testing.assert_allclose(theta, theta_d, rtol=1e-4, atol=1e-4 * float(jnp.max(theta)))
  np.testing.assert_allclose(m_trace, np.sqrt(np.trace(theta) / 8), rtol=1e-5)
  lam = np.linalg.eigvalsh(np.asarray(theta, np.float64))
  np.testing.assert_allclose(cond, lam[-1] / lam[0], rtol=2e-2)


def test_degenerate_cell_gets_the_sentinel_and_registration():
  batch = tiny_batch_of(8)
  net = tiny_net(np.zeros(6, np.int32))  # all-none cells: the logits ignore the input
  cond = jax.jit(lambda b: get_proxy("hnas_cond").fn(
      net, net.init(jax.random.key(0), b.x), b, None))(batch)
  assert float(cond) == 1e5
  assert get_proxy("hnas_trace").batch_size == 64 and get_proxy("hnas_cond").batch_size == 64
  assert not get_proxy("hnas_cond").higher_is_better and get_proxy("hnas_trace").higher_is_better


def test_nb101_kernel_over_the_compact_parameters_equals_the_shared_layouts():
  """On NB101's unrolled network the kernel is taken over the compact parameters (the discrete
  layers at their real widths, one gradient pass where the shared layout's 57M entries took 8):
  the same Theta as over the shared layout, in one group or in many."""
  from jaxnas.ntk.per_sample import network_gram
  from tests.spaces.nb101.common import INCEPTION
  b = tiny_batch_of(8)
  net = spaces.network("nb101", INCEPTION, stem_channels=8, num_stacks=2, modules_per_stack=1,
                       unrolled=True)
  v = net.init(jax.random.key(0), b.x)
  cot = jax.nn.one_hot(b.y, net.module.num_classes, dtype=b.x.dtype)
  sel = P.select(v["params"], P.WEIGHTS_AND_BIASES)
  shared = np.asarray(network_gram(net, v, b.x, cot, "shares", select=sel))
  grouped = np.asarray(network_gram(net, v, b.x, cot, "shares", select=sel, max_bytes=8 * 4000))
  got = np.asarray(hnas_kernel(net, v, b))
  assert net.compact(v)[0].module.compact
  for theta in (got, grouped):
    np.testing.assert_allclose(theta, shared, rtol=1e-4, atol=1e-5 * np.abs(shared).max())
