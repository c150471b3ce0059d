"""TE-NAS: the NTK rows against ``jax.jacrev`` of the batched map (and not per-example gradients:
BN couples the samples), the parameter selection and condition number against numpy, and the
linear-region count against explicit counting of ReLU patterns (Python sets) of the discrete
network on the same crops."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import spaces
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import get_proxy, tenas
from jaxnas.spaces import nb201
from tests.conftest import TINY, tiny_batch_of
from tests.proxies.test_nwot import relu_inputs


class _Coupled:
  """A stand-in network whose samples interact like batch-statistics BN: centre, then dense."""

  def apply(self, variables, x):
    p = variables["params"]
    h = jnp.tanh(x.reshape(x.shape[0], -1) @ p["conv_a"]["kernel"])
    h = (h - h.mean(0)) * p["bn_a"]["scale"] + p["bn_a"]["bias"]
    return h @ p["classifier"]["kernel"]


def test_rows_are_jacrev_of_the_batched_map_in_padded_chunks():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(6, 2, 2, 1)), jnp.float32)
  p = {"conv_a": {"kernel": rng.normal(size=(4, 5))}, "bn_a": {"scale": rng.normal(size=5),
       "bias": rng.normal(size=5)}, "classifier": {"kernel": rng.normal(size=(5, 3))}}
  v = {"params": jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), p)}
  net = _Coupled()
  got = jax.jit(lambda v, x: tenas.logit_sum_jacobian(net, v, x, chunk=4))(v, x)  # 4 + 2 (+2 pad)
  ref = jax.jacrev(lambda p: jnp.sum(net.apply({"params": p}, x), -1))(v["params"])
  jax.tree_util.tree_map(lambda g, r: np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6),
                         got, ref)
  # the samples are coupled: per-example gradients are a different object
  one = lambda x1: jax.grad(lambda p: jnp.sum(net.apply({"params": p}, x1[None])))(v["params"])
  assert not np.allclose(got["classifier"]["kernel"], jax.vmap(one)(x)["classifier"]["kernel"])


def test_ntk_proxy_against_jacrev_and_numpy_on_nb201():
  proxy = get_proxy("tenas_ntk_cond")
  assert not proxy.higher_is_better and proxy.batch_size == 72
  b = tiny_batch_of(6)
  net = spaces.network("nb201", np.zeros(6, np.int32), **TINY)
  v = jax.jit(net.init)(jax.random.key(0), b.x)
  f = jax.jit(lambda v, b, a: proxy.fn(net._replace(arch=a), v, b, None))
  a = nb201.from_index(180)
  kappa = float(f(v, b, a))
  # reference: jax.jacrev of the batched map (BN couples the samples), TE-NAS's "weight" tensors
  # (conv/dense kernels and BN scales, never biases) picked by leaf name, numpy float64 eigenvalues
  g = jax.jit(jax.jacrev(lambda p: jnp.sum(net._replace(arch=a).apply({**v, "params": p}, b.x),
                                           axis=-1)))(v["params"])
  flat = [np.asarray(x, np.float64).reshape(6, -1) for p, x in
          jax.tree_util.tree_flatten_with_path(g)[0] if p[-1].key in ("kernel", "scale")]
  ref = sum(x @ x.T for x in flat)
  np.testing.assert_allclose(np.asarray(tenas.ntk_gram(g)), ref, rtol=1e-4)
  ev = np.linalg.eigvalsh(ref)
  np.testing.assert_allclose(kappa, ev[-1] / ev[0], rtol=2e-2)
  assert 1.0 <= kappa < tenas.ILL_CONDITIONED
  # all-none cell: every weight gradient of the logit sum is 0 -> Theta = 0 (reference NaN -> 1e5)
  assert float(f(v, b, np.zeros(6, np.int32))) == tenas.ILL_CONDITIONED
  assert float(tenas.condition_number(jnp.ones((3, 3)))) == tenas.ILL_CONDITIONED  # singular


def test_count_patterns_on_known_groups():
  codes = np.array([[1, 0, 1], [1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 0, 0], [1, 0, 1]], np.float32)
  d = np.asarray(tenas.hamming_distance(jnp.asarray(codes) - 0.5))
  np.testing.assert_array_equal(d, (codes[:, None] != codes[None]).sum(-1))
  assert float(tenas.count_patterns(jnp.asarray(d))) == pytest.approx(3.0)


def test_region_count_equals_distinct_patterns_of_discrete_network():
  b = tiny_batch_of(8)
  key = jax.random.key(5)
  crops = jax.jit(tenas.random_crops)(b.x, key)
  assert crops.shape == (tenas.REGION_SAMPLES, 4, 4, 3)
  crops_np, images = np.asarray(crops), np.asarray(b.x)
  np.testing.assert_array_equal(crops_np[..., 0], crops_np[..., 2])    # one channel, copied
  patches = {images[i, y:y + 4, x:x + 4, c].tobytes()
             for i in range(8) for y in range(5) for x in range(5) for c in range(3)}
  assert all(cr[..., 0].tobytes() in patches for cr in crops_np)

  proxy = get_proxy("tenas_regions")
  net = spaces.network("nb201", np.zeros(6, np.int32), **TINY)
  v = jax.jit(net.init)(jax.random.key(0), b.x)
  f = jax.jit(lambda v, b, key, a: proxy.fn(net._replace(arch=a), v, b, key))
  a = nb201.from_index(15624)        # 1x1 convs and none edges: few units, repeated patterns
  got = float(f(v, b, key, a))
  inputs = relu_inputs(a, v, crops)
  codes = np.concatenate([(h.reshape(h.shape[0], -1) > 0) for h in inputs], axis=1)
  distinct = len({row.tobytes() for row in np.packbits(codes, axis=1)})
  assert got == pytest.approx(distinct, abs=1e-3)
  assert 1 <= distinct <= tenas.REGION_SAMPLES
  with pytest.raises(JaxnasInputError, match="4x4"):
    tenas.random_crops(b.x[:, :2, :2], key)


def test_kernel_without_the_jacobian_equals_the_gram_of_its_rows():
  """Beyond GRAM_BYTES, Theta = J (J^T e_j) column by column (never forming G): the same kernel
  as G G^T, traced and on the unrolled network of a concrete architecture (the eager executor),
  with a chunk that does not divide the batch."""
  b = tiny_batch_of(6)
  a = nb201.from_index(9930)
  net = spaces.network("nb201", a, **TINY)
  v = jax.jit(net.init)(jax.random.key(1), b.x)
  gram = jax.jit(lambda v, x, a: tenas.logit_sum_ntk(net._replace(arch=a), v, x, chunk=4))
  products = jax.jit(lambda v, x, a: tenas.logit_sum_ntk(net._replace(arch=a), v, x, chunk=4,
                                                         max_bytes=0))
  ref = np.asarray(gram(v, b.x, a))
  got = np.asarray(products(v, b.x, a))
  np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())
  np.testing.assert_array_equal(got, got.T)
  unrolled = spaces.network("nb201", a, **dict(TINY, unrolled=True))
  eager = np.asarray(tenas.logit_sum_ntk(unrolled, v, b.x, chunk=4, max_bytes=0))
  np.testing.assert_allclose(eager, ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())
  ev = np.linalg.eigvalsh(np.asarray(ref, np.float64))
  np.testing.assert_allclose(float(tenas.condition_number(jnp.asarray(got))), ev[-1] / ev[0],
                             rtol=2e-2)
  with pytest.raises(JaxnasInputError, match="no parameters of the roles"):
    tenas.logit_sum_ntk(net, v, b.x, kinds=())


def test_theta_has_the_ones_vector_in_its_null_space_only_where_nonlinear_readout_is_lacking():
  """The DARTS network pools and classifies cells whose nodes are sums of train-mode BN outputs:
  sum_i f(x_i) has zero gradient w.r.t. every kernel and BN scale, so Theta 1 = 0 and kappa is
  round-off there (the space lacks ``nonlinear_readout`` and the proxy is refused). NB201's last BN is
  followed by a ReLU, and every NB101 op ends in one (both provide ``nonlinear_readout``): their
  Theta has no such null vector."""
  from jaxnas.spaces import darts
  from tests.spaces.nb101.common import INCEPTION
  b = tiny_batch_of(8, 8)

  def null_ratio(net):
    v = jax.jit(net.init)(jax.random.key(0), b.x)
    th = np.asarray(tenas.logit_sum_ntk(net, v, b.x), np.float64)
    return np.linalg.norm(th.sum(axis=1)) / np.linalg.norm(th)

  assert null_ratio(spaces.network("darts", darts.encode("DARTS_V2"), C=4, L=4)) < 1e-5
  assert null_ratio(spaces.network("nb201", nb201.from_index(9930), **TINY)) > 1e-2
  nb101 = dict(stem_channels=8, num_stacks=2, modules_per_stack=1)
  assert null_ratio(spaces.network("nb101", INCEPTION, **nb101)) > 1e-2
  for space in ("nb201", "nb101"):
    assert "nonlinear_readout" in spaces.get_space(space).capabilities()


def test_nb101_kernel_over_the_compact_parameters_equals_the_shared_layouts():
  """tenas_ntk_cond takes NB101's kernel over the compact parameters (the discrete layers at their
  real widths: G formed whole where the shared layout's 57M entries needed J (J^T e_j) column by
  column): the same Theta as over the shared layout by either route, and the same kappa."""
  from tests.spaces.nb101.common import INCEPTION
  b = tiny_batch_of(6)
  net = spaces.network("nb101", INCEPTION, stem_channels=8, num_stacks=2, modules_per_stack=1,
                       unrolled=True)
  v = net.init(jax.random.key(0), b.x)
  shared = np.asarray(tenas.logit_sum_ntk(net, v, b.x, chunk=4))
  cnet, cv = net.compact(v)
  for theta in (tenas.logit_sum_ntk(cnet, cv, b.x, chunk=4),
                tenas.logit_sum_ntk(cnet, cv, b.x, chunk=4, max_bytes=0),
                tenas.logit_sum_ntk(net, v, b.x, chunk=4, max_bytes=0)):
    np.testing.assert_allclose(theta, shared, rtol=1e-4, atol=1e-6 * np.abs(shared).max())
  np.testing.assert_allclose(get_proxy("tenas_ntk_cond").fn(net, v, b, None),
                             tenas.condition_number(jnp.asarray(shared)), rtol=2e-2)
  # on CPU the unrolled network pulls rows back one at a time (vmapped: grouped convolutions);
  # the shared reference above, chunk 4 by its arguments, ran that route too
  assert tenas.rows_per_pullback(net, 4) == (1 if jax.default_backend() == "cpu" else 4)
  assert tenas.rows_per_pullback(spaces.network("nb101", INCEPTION), 4) == 4
