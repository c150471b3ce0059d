"""ntk_trace: the exact NTK trace through neural-tangents equals sum_x ||J_x||_F^2 computed with
plain per-sample Jacobians (no neural-tangents), on the eval-mode network."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.ntk import empirical, per_sample
from jaxnas.proxies import get_proxy
from jaxnas.proxies.ntk_trace import _chunk
from tests.conftest import tiny_batch_of, tiny_net


def test_ntk_trace_equals_sum_of_per_example_jacobian_norms():
  batch = tiny_batch_of(16)  # two chunks of 8 samples
  net = tiny_net(np.array([3, 1, 2, 4, 3, 0]))

  def fn(b, key):
    v = net.init(key, b.x)
    score = get_proxy("ntk_trace").fn(net, v, b, key)
    apply_fn, chosen = empirical.network_apply(net.replace(bn="running"), v)
    jac = per_sample.jacobian(apply_fn, chosen, b.x, coupled=False)
    return score, sum(jnp.sum(jnp.square(j)) for j in jax.tree_util.tree_leaves(jac))

  score, ref = jax.jit(fn)(batch, jax.random.key(0))
  np.testing.assert_allclose(score, ref, rtol=1e-5)


def test_chunk_and_registration():
  assert [_chunk(n) for n in (64, 12, 7, 13, 1)] == [8, 6, 7, 1, 1]
  p = get_proxy("ntk_trace")
  assert p.needs_data and not p.needs_labels and p.higher_is_better and p.needs_variables
