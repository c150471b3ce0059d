"""Empirical NTK through neural-tangents on the tiny NB201 network.

References: the library's own ``J J^T`` (``jax.jacrev`` of the batched map, or per-sample
``jacrev``), computed without neural-tangents. The discrete build keeps compilation short; the
shared (scan/switch) build goes through the same code in the ``ntk_trace`` proxy test, and the
three NT implementations are compared by the theory check (``tests/ntk/test_theory.py``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import spaces
from jaxnas.errors import JaxnasInputError
from jaxnas.ntk import empirical, per_sample
from jaxnas.spaces.nb201_net import NB201Net
from tests.conftest import TINY, tiny_batch_of

ARCH = (3, 1, 2, 4, 0, 3)


def discrete_net(**config):
  return spaces.Network(spaces.get_space("nb201"), NB201Net(**TINY, **config, fixed_arch=ARCH),
                        None)


def _rel(a, b):
  return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


@pytest.mark.parametrize("bn", ["batch", "running"])
def test_nt_equals_own_jacobian_and_chunking_and_trace(bn):
  batch = tiny_batch_of(4)
  net = discrete_net(bn=bn)
  coupled = empirical.is_coupled(net)
  assert coupled == (bn == "batch")

  def fn(x):
    v = net.init(jax.random.key(0), x)
    apply_fn, chosen = empirical.network_apply(net, v)
    full = empirical.network_ntk(net, v, x, trace_outputs=False)
    own = per_sample.jacobian_ntk(apply_fn, chosen, x, coupled)
    chunked = empirical.network_ntk(net, v, x, sample_chunk=2, output_chunk=5)
    diag = empirical.network_ntk(net, v, x, diagonal=True, sample_chunk=2)
    return full, own, chunked, diag

  full, own, chunked, diag = jax.jit(fn)(batch.x)
  assert full.shape == (4, 4, 10, 10)
  assert _rel(full, own) < 1e-5
  traced = jnp.einsum("ijkk->ij", own)  # the trace proper: a sum over the 10 logits, not a mean
  assert _rel(chunked, traced) < 1e-5
  np.testing.assert_allclose(diag, jnp.diagonal(traced), rtol=1e-5)


def test_vmap_axes_0_is_refused_under_batch_statistics_and_would_be_wrong():
  batch = tiny_batch_of(4)
  net = discrete_net()
  v = jax.jit(net.init)(jax.random.key(0), batch.x)
  with pytest.raises(JaxnasInputError, match="batch statistics"):
    empirical.network_ntk(net, v, batch.x, vmap_axes=0)
  # what vmap_axes=0 would silently compute: the NTK of single-sample batches (another network)
  apply_fn, chosen = empirical.network_apply(net, v)
  right, wrong = jax.jit(lambda p: (
      empirical.empirical_ntk(apply_fn, p, batch.x, coupled=True),
      empirical.empirical_ntk(apply_fn, p, batch.x, coupled=False)))(chosen)
  assert _rel(wrong, right) > 0.1


def test_bad_arguments():
  batch = tiny_batch_of(4)
  net = discrete_net(bn="none")
  v = jax.jit(net.init)(jax.random.key(0), batch.x)
  with pytest.raises(JaxnasInputError, match="sample_chunk"):
    empirical.network_ntk(net, v, batch.x, sample_chunk=3)
  with pytest.raises(JaxnasInputError, match="output_chunk"):
    empirical.network_ntk(net, v, batch.x, trace_outputs=False, output_chunk=5)
  with pytest.raises(JaxnasInputError, match="implementation"):
    empirical.network_ntk(net, v, batch.x, implementation="fast")
  with pytest.raises(JaxnasInputError, match="vmap_axes"):
    empirical.network_ntk(net, v, batch.x, vmap_axes=1)
  with pytest.raises(JaxnasInputError, match="empty"):
    empirical.split_params(v["params"], jax.tree_util.tree_map(lambda _: False, v["params"]))
