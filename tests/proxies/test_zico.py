"""ZiCo: the proxy on the shared build against the reference formula (numpy, per-layer loop) on
gradients of the discrete network, the aggregate on hand-made gradients, and the degenerate case."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.data import Batch
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import _common, get_proxy, zico
from jaxnas.spaces import nb201
from tests.conftest import TINY, tiny_batch_of, tiny_net


def reference_zico(grad_dict):
  """The reference ``caculate_zico``: ``grad_dict[layer] = [g_batch1, g_batch2, ...]`` (flat)."""
  total = 0.0
  for grads in grad_dict.values():
    g = np.array(grads)
    std = np.std(g, axis=0)
    nz = np.nonzero(std)[0]
    mean_abs = np.mean(np.abs(g), axis=0)
    tmpsum = np.sum(mean_abs[nz] / std[nz])
    if tmpsum != 0:
      total += np.log(tmpsum)
  return total


def test_aggregate_on_hand_made_gradients():
  rng = np.random.default_rng(0)
  g = rng.normal(size=(2, 3, 3, 2, 4)).astype(np.float32)           # one conv layer, 2 batches
  g[:, 0, 0, 0, :] = 0.5                                              # zero std: skipped
  dense = np.zeros((2, 4, 10), np.float32)                            # a dead layer: skipped
  stacked = rng.normal(size=(2, 2, 6, 1, 1, 4, 4)).astype(np.float32)  # 12 stacked 1x1 convs
  grads = {"conv_stem": {"kernel": g}, "classifier": {"kernel": dense},
           "cells_0": {"conv1x1": {"kernel": stacked}}}
  mask = np.zeros((2, 6), np.float32)
  mask[:, [1, 4]] = 1.0                                               # 4 of them are used
  masks = {"conv_stem": {"kernel": 1.0}, "classifier": {"kernel": 1.0},
           "cells_0": {"conv1x1": {"kernel": mask}}}
  got = float(jax.jit(zico.score_from_gradients)(grads, masks))
  layers = {"stem": list(g.reshape(2, -1)), "dense": list(dense.reshape(2, -1))}
  for i, e in ((0, 1), (0, 4), (1, 1), (1, 4)):
    layers[f"cell{i}{e}"] = list(stacked[:, i, e].reshape(2, -1))
  np.testing.assert_allclose(got, reference_zico(layers), rtol=1e-5)
  assert got > 0


class _Linear:
  """A stand-in network (logits = flattened input @ W) for the batch-splitting logic."""

  def apply(self, variables, x):
    return x.reshape(x.shape[0], -1) @ variables["params"]["classifier"]["kernel"]


@pytest.mark.parametrize("n", [5, 6])
def test_split_gradients_follow_the_reference_slices(n):
  rng = np.random.default_rng(n)
  x = jnp.asarray(rng.normal(size=(n, 2, 2, 1)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 3, size=n), jnp.int32)
  v = {"params": {"classifier": {"kernel": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)}}}
  got = jax.jit(lambda v, b: zico.split_gradients(_Linear(), v, b))(v, Batch(x, y))
  for s, (lo, hi) in enumerate(((0, n // 2), (n // 2, n))):   # [s*n//2, (s+1)*n//2)
    ref = jax.grad(lambda p: _common.cross_entropy(_Linear().apply({"params": p}, x[lo:hi]),
                                                   y[lo:hi]))(v["params"])
    np.testing.assert_allclose(got["classifier"]["kernel"][s], ref["classifier"]["kernel"],
                               rtol=1e-5, atol=1e-7)


@functools.lru_cache(maxsize=None)
def _setup():
  """Variables, batch and the jitted proxy with the architecture as an argument (one compile)."""
  b = tiny_batch_of(16)
  net = tiny_net(np.zeros(6, np.int32))
  v = jax.jit(net.init)(jax.random.key(0), b.x)
  fn = jax.jit(lambda v, b, a: get_proxy("zico").fn(net._replace(arch=a), v, b, None))
  return b, v, fn


def test_proxy_equals_reference_on_discrete_network_gradients():
  b, v, fn = _setup()
  a = nb201.from_index(180)
  got = float(fn(v, b, a))
  # reference: CE gradients of each half through the discrete network, one entry per conv/dense
  disc = nb201.NB201Net(fixed_arch=tuple(a), **TINY)
  vd = {k: nb201.discrete_params(t, a) for k, t in v.items()}
  grad = jax.jit(jax.grad(lambda p, x, y: _common.cross_entropy(
      disc.apply({**vd, "params": p}, x), y)))
  halves = [grad(vd["params"], b.x[s], b.y[s]) for s in (slice(0, 8), slice(8, 16))]
  layers = {}
  for h in halves:
    for path, g in jax.tree_util.tree_flatten_with_path(h)[0]:
      name = "/".join(str(getattr(k, "key", k)) for k in path)
      if name.endswith("kernel"):                 # conv and dense weights only
        layers.setdefault(name, []).append(np.asarray(g, np.float64).ravel())
  # stem, 2 x (conv_a, conv_b, shortcut), classifier, and 3 stages x the 4 convs of arch 180
  assert len(layers) == 1 + 6 + 1 + 3 * 4
  np.testing.assert_allclose(got, reference_zico(layers), rtol=1e-4)
  assert float(fn(v, b, np.zeros(6, np.int32))) == 0.0   # all none: no weight gets a gradient


def test_small_batch_is_rejected():
  b = tiny_batch_of(2)
  with pytest.raises(JaxnasInputError, match="at least 2"):
    zico.split_gradients(tiny_net(np.zeros(6, np.int32)), None, Batch(b.x[:1], b.y[:1]))
