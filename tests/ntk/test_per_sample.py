"""Per-sample gradient semantics: TE-NAS rows, HNAS shares (autograd-hacks), independent samples.

Independent references: a toy conv-BN-ReLU-pool-dense network written twice, once as a batched
function (the route under test) and once with an explicit parameter copy per sample and explicit
batch statistics (the definition of HNAS' shares); explicit per-sample gradient loops.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import spaces
from jaxnas.errors import JaxnasInputError
from jaxnas.ntk import per_sample
from jaxnas.spaces import ops
from jaxnas.spaces import params as P
from jaxnas.spaces.nb201 import NB201Net
from tests.conftest import TINY, tiny_batch_of, tiny_net

B, K = 5, 3


def _toy_params(key):
  k1, k2, k3, k4 = jax.random.split(key, 4)
  return {"conv": jax.random.normal(k1, (3, 3, 2, 4)) * 0.4, "conv_b": jax.random.normal(k2, (4,)),
          "dense": jax.random.normal(k3, (4, K)) * 0.5, "dense_b": jax.random.normal(k4, (K,))}


def _toy_apply(p, x, bn="batch"):
  z = ops.conv2d(x, p["conv"], padding=1) + p["conv_b"]
  z, _ = ops.batch_norm(z, None, None, None, bn)  # looked up at call time, as NB201Net does
  h = jnp.mean(jax.nn.relu(z), axis=(1, 2))
  return h @ p["dense"] + p["dense_b"]


def _toy_shares_by_definition(p, x, cot):
  """d S / d theta_i with explicit per-sample parameter copies and explicit batch statistics."""
  stacked = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (B,) + a.shape), p)

  def total(st):
    z = jax.vmap(lambda xi, k, b: ops.conv2d(xi[None], k, padding=1)[0] + b)(
        x, st["conv"], st["conv_b"])
    mean = jnp.mean(z, axis=(0, 1, 2))
    var = jnp.mean((z - mean) ** 2, axis=(0, 1, 2))
    h = jnp.mean(jax.nn.relu((z - mean) / jnp.sqrt(var + 1e-5)), axis=(1, 2))
    out = jnp.einsum("bc,bck->bk", h, st["dense"]) + st["dense_b"]
    return jnp.sum(out * cot)

  return jax.grad(total)(stacked)


@pytest.fixture(scope="module")
def toy():
  x = jax.random.normal(jax.random.key(1), (B, 6, 6, 2))
  cot = jax.nn.one_hot(jnp.array([0, 2, 1, 1, 0]), K)
  return _toy_params(jax.random.key(0)), x, cot


def _close(a, b, tol=1e-4):
  """Leaf-wise closeness with an absolute tolerance relative to the largest entry of ``b`` (the
  conv bias gradients are zero up to rounding: BN removes a shift)."""
  scale = max(float(jnp.max(jnp.abs(lb))) for lb in jax.tree_util.tree_leaves(b))
  for la, lb in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(la, lb, rtol=tol, atol=tol * scale)


def test_shares_equal_explicit_parameter_copies(toy):
  p, x, cot = toy
  got = jax.jit(lambda p: per_sample.per_sample_grads(_toy_apply, p, x, cot, "shares"))(p)
  _close(got, _toy_shares_by_definition(p, x, cot))
  # autograd-hacks' formula for the last layer: share_i(W) = h_i (x) c_i, share_i(b) = c_i
  np.testing.assert_allclose(got["dense_b"], cot, atol=1e-6)


def test_rows_and_independent_equal_explicit_loops(toy):
  p, x, cot = toy
  rows = jax.jit(lambda p: per_sample.per_sample_grads(_toy_apply, p, x, cot, "rows"))(p)
  indep = jax.jit(lambda p: per_sample.per_sample_grads(
      lambda q, xx: _toy_apply(q, xx, "none"), p, x, cot, "independent"))(p)
  for i in range(B):
    gi = jax.grad(lambda q: jnp.sum(_toy_apply(q, x)[i] * cot[i]))(p)
    _close(jax.tree_util.tree_map(lambda a: a[i], rows), gi)
    hi = jax.grad(lambda q: jnp.sum(_toy_apply(q, x[i:i + 1], "none")[0] * cot[i]))(p)
    _close(jax.tree_util.tree_map(lambda a: a[i], indep), hi)


def test_semantics_differ_under_batch_bn_and_coincide_without(toy):
  p, x, cot = toy
  grads = {s: jax.jit(lambda p, s=s: per_sample.per_sample_grads(_toy_apply, p, x, cot, s))(p)
           for s in ("rows", "shares")}
  diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
      jax.tree_util.tree_leaves(grads["rows"]), jax.tree_util.tree_leaves(grads["shares"])))
  assert diff > 1e-2
  # both decompose the batch gradient of S = sum_i <c_i, f(X)_i>
  full = jax.grad(lambda q: jnp.sum(_toy_apply(q, x) * cot))(p)
  for g in grads.values():
    _close(jax.tree_util.tree_map(lambda a: a.sum(0), g), full)
  no_bn = lambda q, xx: _toy_apply(q, xx, "none")
  ref = per_sample.per_sample_grads(no_bn, p, x, cot, "independent")
  for s in ("rows", "shares"):
    _close(jax.jit(lambda p, s=s: per_sample.per_sample_grads(no_bn, p, x, cot, s))(p), ref)


def test_nb201_hnas_vs_tenas_semantics():
  """On the tiny NB201 network (discrete build, quick to compile; the shared build's shares are
  tested through the hnas proxies): rows != shares with batch-statistics BN; equal in eval mode."""
  batch = tiny_batch_of(6)
  cot = jax.nn.one_hot(batch.y, 10)
  arch = (3, 1, 2, 4, 3, 1)

  def grams(bn):
    net = spaces.Network(spaces.get_space("nb201"), NB201Net(**TINY, bn=bn, fixed_arch=arch), None)

    def fn(x):
      v = net.init(jax.random.key(0), x)
      sel = P.select(v["params"], P.WEIGHTS_AND_BIASES)
      return [per_sample.gram(per_sample.network_grads(net, v, x, cot, s, select=sel))
              for s in ("rows", "shares")]
    return jax.jit(fn)(batch.x)

  rows, shares = grams("batch")
  assert float(jnp.max(jnp.abs(rows - shares)) / jnp.max(jnp.abs(rows))) > 1e-2
  rows, shares = grams("running")
  np.testing.assert_allclose(shares, rows, rtol=2e-4, atol=1e-4 * float(jnp.max(rows)))


def test_bad_inputs_are_refused(toy):
  p, x, cot = toy
  with pytest.raises(JaxnasInputError, match="semantics"):
    per_sample.per_sample_grads(_toy_apply, p, x, cot, "per_layer")
  with pytest.raises(JaxnasInputError, match="rows"):
    per_sample.per_sample_grads(_toy_apply, p, x, cot[:2], "rows")
  net = tiny_net(np.ones(6, np.int32))
  with pytest.raises(JaxnasInputError, match="independent"):
    per_sample.network_grads(net, {"params": {}}, jnp.zeros((2, 8, 8, 3)), jnp.zeros((2, 10)),
                             "independent")


def _two_conv_apply(p, x):
  """3x3 stride-2 conv, a 3x3 and a 1x1 conv inside ``lax.switch`` (the nested form), batch-BN."""
  z = ops.conv2d(x, p["c1"], stride=2, padding=1)
  z, _ = ops.batch_norm(z, None, None, None, "batch")
  r = jax.nn.relu(z)
  z = jax.lax.switch(1, [lambda h: ops.conv2d_nested(h, p["c3"], 1, 1),
                         lambda h: ops.conv2d_nested(h, p["c3"], 1, 1)
                         + ops.conv2d_nested(h, p["c1x1"], 1, 0)], r)
  z, _ = ops.batch_norm(z, None, None, None, "batch")
  return jnp.mean(jax.nn.relu(z), axis=(1, 2)) @ p["dense"]


def test_equal_copies_route_equals_one_copy_per_sample():
  """The fast 'shares' route (one kernel for the batch, per-sample kernel gradients from shifted
  inputs) equals every sample convolving with its own copy: strides, paddings, 1x1 and 3x3, the
  plain and the nested convolution, and the NB201 shared build (map-mode bodies)."""
  ks = jax.random.split(jax.random.key(3), 4)
  p = {"c1": jax.random.normal(ks[0], (3, 3, 2, 4)) * 0.4,
       "c3": jax.random.normal(ks[1], (3, 3, 4, 4)) * 0.3,
       "c1x1": jax.random.normal(ks[2], (1, 1, 4, 4)) * 0.5,
       "dense": jax.random.normal(ks[3], (4, K)) * 0.5}
  x = jax.random.normal(jax.random.key(4), (B, 7, 7, 2))
  cot = jax.nn.one_hot(jnp.array([0, 2, 1, 1, 0]), K)
  fast, slow = (jax.jit(lambda p, e=e: per_sample.per_sample_grads(
      _two_conv_apply, p, x, cot, "shares", equal_copies=e))(p) for e in (True, False))
  _close(fast, slow, 2e-5)

  batch = tiny_batch_of(6)
  space = spaces.get_space("nb201")
  net = spaces.Network(space, NB201Net(**TINY), jnp.asarray([3, 1, 2, 4, 3, 1], jnp.int32))
  variables = net.init(jax.random.key(0), batch.x)
  sel = P.select(variables["params"], P.WEIGHTS_AND_BIASES)
  cot = jax.nn.one_hot(batch.y, 10)
  fast, slow = (jax.jit(lambda v, e=e: per_sample.gram(per_sample.network_grads(
      net, v, batch.x, cot, "shares", select=sel, equal_copies=e)))(variables)
      for e in (True, False))
  np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(slow))))


def test_equal_copies_shortcut_stays_inside_its_trace():
  """A function traced under the shortcut and batched later over *different* kernels (a vmap over
  architectures, a cached jitted block) runs the exact per-kernel route."""
  from jaxnas.ntk._copies import kernel_copies_equal
  f = jax.jit(lambda x, k: ops.conv2d(x, k, 2, 1))
  x = jax.random.normal(jax.random.key(0), (3, 1, 5, 5, 2))
  k = jax.random.normal(jax.random.key(1), (3, 3, 3, 2, 4))
  with kernel_copies_equal(3):
    f(x[0], k[0])                       # traced (and cached) with the shares convolution
  want = jnp.stack([_CONV(x[i], k[i]) for i in range(3)])
  np.testing.assert_allclose(jax.vmap(f)(x, k), want, rtol=1e-5, atol=1e-5)
  g = jax.vmap(jax.grad(lambda x, k: jnp.sum(f(x, k) ** 2), argnums=1))(x, k)
  want = jnp.stack([jax.grad(lambda kk: jnp.sum(_CONV(x[i], kk) ** 2))(k[i]) for i in range(3)])
  np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-4)


def _CONV(x, k):
  return jax.lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def test_gram_in_groups_of_leaves_equals_one_pass():
  """network_gram with a budget that forces one group per few leaves: the same kernel as the Gram
  of all per-sample gradients at once, and the groups partition the selection."""
  batch = tiny_batch_of(6)
  cot = jax.nn.one_hot(batch.y, 10)
  net = spaces.Network(spaces.get_space("nb201"),
                       NB201Net(**TINY, bn="batch", fixed_arch=(3, 1, 2, 4, 3, 1)), None)
  v = jax.jit(net.init)(jax.random.key(0), batch.x)
  sel = P.select(v["params"], P.WEIGHTS_AND_BIASES)
  sizes = [a.size * 4 * 6 for a, s in zip(jax.tree_util.tree_leaves(v["params"]),
                                          jax.tree_util.tree_leaves(sel)) if s]
  budget = max(sizes) + 1
  groups = per_sample.leaf_groups(v["params"], sel, 6, budget)
  assert 1 < len(groups) < len(sizes)
  picked = np.sum([jax.tree_util.tree_leaves(g) for g in groups], axis=0)
  np.testing.assert_array_equal(picked, np.asarray(jax.tree_util.tree_leaves(sel), int))
  for g in groups:
    assert sum(a.size * 4 * 6 for a, s in zip(jax.tree_util.tree_leaves(v["params"]),
                                              jax.tree_util.tree_leaves(g)) if s) <= budget
  one = jax.jit(lambda v: per_sample.gram(per_sample.network_grads(net, v, batch.x, cot, "shares",
                                                                   select=sel)))(v)
  grouped = jax.jit(lambda v: per_sample.network_gram(net, v, batch.x, cot, "shares", select=sel,
                                                      max_bytes=budget))(v)
  np.testing.assert_allclose(grouped, one, rtol=1e-5, atol=1e-6 * float(jnp.max(one)))
  assert per_sample.leaf_groups(v["params"], sel, 6, 0) and len(
      per_sample.leaf_groups(v["params"], sel, 6, 0)) == len(sizes)   # one leaf per group
  with pytest.raises(JaxnasInputError, match="selection is empty"):
    per_sample.network_gram(net, v, batch.x, cot, "shares",
                            select=jax.tree_util.tree_map(lambda _: False, v["params"]))
