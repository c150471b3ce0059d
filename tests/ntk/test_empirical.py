"""jaxnas' empirical NTK (Jacobian contraction and NTK-vector products) on the tiny NB201 network.

References: ``per_sample.jacobian_ntk`` (``jax.jacrev`` of the batched map, or per-sample
``jacrev``, contracted by hand) and an explicit loop of ``jax.grad`` over single logits; the two
routes against each other. neural-tangents itself is the oracle of ``tests/ntk/test_nt_oracle.py``
(a separate environment). The discrete build keeps compilation short; the shared (scan/switch)
build goes through the same code in the ``ntk_trace`` proxy test.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import spaces
from jaxnas.errors import JaxnasInputError
from jaxnas.ntk import empirical, per_sample
from jaxnas.spaces.nb201 import NB201Net
from tests.conftest import TINY, tiny_batch_of

ARCH = (3, 1, 2, 4, 0, 3)


def discrete_net(**config):
  return spaces.Network(spaces.get_space("nb201"), NB201Net(**TINY, **config, fixed_arch=ARCH),
                        None)


def _rel(a, b):
  return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


@pytest.mark.parametrize("impl", ["jacobian_contraction", "ntk_vector_products"])
@pytest.mark.parametrize("bn", ["batch", "running"])
def test_routes_equal_own_jacobian_and_chunking_and_trace(bn, impl):
  batch = tiny_batch_of(4)
  net = discrete_net(bn=bn)
  coupled = empirical.is_coupled(net)
  assert coupled == (bn == "batch")

  def fn(x):
    v = net.init(jax.random.key(0), x)
    apply_fn, chosen = empirical.network_apply(net, v)
    full = empirical.network_ntk(net, v, x, trace_outputs=False, implementation=impl)
    own = per_sample.jacobian_ntk(apply_fn, chosen, x, coupled)
    chunked = empirical.network_ntk(net, v, x, sample_chunk=2, output_chunk=5,
                                    implementation=impl)
    diag = empirical.network_ntk(net, v, x, diagonal=True, sample_chunk=2, implementation=impl)
    diag_full = empirical.network_ntk(net, v, x, diagonal=True, trace_outputs=False,
                                      implementation=impl)
    return full, own, chunked, diag, diag_full

  full, own, chunked, diag, diag_full = jax.jit(fn)(batch.x)
  assert full.shape == (4, 4, 10, 10) and diag_full.shape == (4, 10, 10)
  assert _rel(full, own) < 1e-5
  traced = jnp.einsum("ijkk->ij", own)  # the trace proper: a sum over the 10 logits, not a mean
  assert _rel(chunked, traced) < 1e-5
  np.testing.assert_allclose(diag, jnp.diagonal(traced), rtol=1e-5)
  np.testing.assert_allclose(diag_full, jnp.stack([own[i, i] for i in range(4)]), rtol=1e-4,
                             atol=1e-6 * float(jnp.max(jnp.abs(own))))


def test_kernel_entries_equal_explicit_gradient_dot_products():
  """Theta[i, j, k, l] = <grad f_k(x_i), grad f_l(x_j)> from jax.grad of single logits (float64)."""
  from jaxnas import _compat
  batch = tiny_batch_of(3)
  net = discrete_net(bn="none")
  with _compat.enable_x64():
    v = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64),
                               net.init(jax.random.key(3), batch.x))
    x = batch.x.astype(jnp.float64)
    apply_fn, chosen = empirical.network_apply(net, v)
    theta = empirical.empirical_ntk(apply_fn, chosen, x, trace_outputs=False, coupled=False,
                                    implementation="ntk_vector_products")
    flat = lambda g: jnp.concatenate([a.ravel() for a in jax.tree_util.tree_leaves(g)])
    for (i, k), (j, l) in [((0, 0), (0, 0)), ((0, 3), (2, 7)), ((1, 9), (2, 1))]:
      gi = flat(jax.grad(lambda p: apply_fn(p, x)[i, k])(chosen))
      gj = flat(jax.grad(lambda p: apply_fn(p, x)[j, l])(chosen))
      np.testing.assert_allclose(theta[i, j, k, l], gi @ gj, rtol=1e-10)


def test_neural_tangents_backend_is_a_clear_error_where_it_does_not_import():
  batch = tiny_batch_of(4)
  net = discrete_net(bn="none")
  v = jax.jit(net.init)(jax.random.key(0), batch.x)
  try:
    empirical.import_nt()
  except JaxnasInputError as e:
    assert "neural-tangents" in str(e) and "backend='jaxnas'" in str(e)
    with pytest.raises(JaxnasInputError, match="neural-tangents"):
      empirical.network_ntk(net, v, batch.x, backend="neural_tangents")
  else:  # the oracle environment: the backend works and equals jaxnas'
    a = empirical.network_ntk(net, v, batch.x, backend="neural_tangents")
    assert _rel(a, empirical.network_ntk(net, v, batch.x)) < 1e-5


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
  with pytest.raises(JaxnasInputError, match="structured_derivatives"):  # neural-tangents' only
    empirical.network_ntk(net, v, batch.x, implementation="structured_derivatives")
  with pytest.raises(JaxnasInputError, match="unknown NTK backend 'nt'; allowed: jaxnas"):
    empirical.network_ntk(net, v, batch.x, backend="nt")
  with pytest.raises(JaxnasInputError, match="vmap_axes"):
    empirical.network_ntk(net, v, batch.x, vmap_axes=1)
  with pytest.raises(JaxnasInputError, match="empty"):
    empirical.split_params(v["params"], jax.tree_util.tree_map(lambda _: False, v["params"]))
