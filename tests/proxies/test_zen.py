"""Zen-score: both terms against the discrete network and numpy (only the architecture's BN layers,
running variances after the two train-mode passes), the stem's running variance against the
momentum formula with an independent convolution, the initialisation, and the degenerate case."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import spaces
from jaxnas.data import Batch
from jaxnas.proxies import get_proxy, zen
from jaxnas.spaces import nb201
from tests.conftest import TINY

SHAPE = (zen.BATCH_SIZE, 8, 8, 3)


@functools.lru_cache(maxsize=None)
def _shared():
  net = spaces.network("nb201", np.zeros(6, np.int32), **{**TINY, "bn": "batch"})
  proxy = jax.jit(lambda x, key, a: get_proxy("zen").fn(net._replace(arch=a), None,
                                                        Batch(x, None), key))
  return net, proxy


def _inputs_and_variables(key):
  net, _ = _shared()
  k_init, k_x = jax.random.split(key)
  x1, xm = zen.zen_inputs(k_x, SHAPE)
  return x1, xm, jax.jit(lambda k, x: zen.init_variables(net, k, x))(k_init, x1)


def test_proxy_equals_discrete_network_and_numpy():
  key = jax.random.key(7)
  x1, xm, v = _inputs_and_variables(key)       # what the proxy draws from its key
  _, proxy = _shared()
  a = nb201.from_index(180)
  # reference: the discrete network (only the architecture's layers exist), two passes in train
  # mode with the running statistics carried over, numpy for both terms
  disc = nb201.NB201Net(fixed_arch=tuple(a), bn="batch", **TINY)
  vd = {k: nb201.discrete_params(t, a) for k, t in v.items()}

  @jax.jit
  def two_passes(vd):
    _, s1 = disc.apply(vd, x1, mutable=["batch_stats", "intermediates"])
    _, s2 = disc.apply({**vd, "batch_stats": s1["batch_stats"]}, xm,
                       mutable=["batch_stats", "intermediates"])
    return s1["intermediates"]["features"][0], s2["intermediates"]["features"][0], s2

  f1, f2, s2 = two_passes(vd)
  ref_delta = np.mean(np.sum(np.abs(np.asarray(f1, np.float64) - np.asarray(f2)), (1, 2, 3)))
  vars_ = [np.asarray(x, np.float64) for p, x in
           jax.tree_util.tree_flatten_with_path(s2["batch_stats"])[0] if p[-1].key == "var"]
  # stem, 3 stages x 4 conv edges of arch 180, 2 reductions x 2, head
  assert len(vars_) == 1 + 3 * 4 + 4 + 1
  ref_bn = sum(np.log(np.sqrt(np.mean(var))) for var in vars_)
  assert ref_delta > 0 and ref_bn > 0
  x_any = jnp.zeros((1, 8, 8, 3))
  score = float(proxy(x_any, key, a))
  np.testing.assert_allclose(score, np.log(ref_delta) + ref_bn, rtol=1e-4)
  # data-free: only the shape of batch.x is read; a cell of none edges -> DEGENERATE (ref. -inf)
  assert float(proxy(jnp.ones((1, 8, 8, 3)), key, a)) == score
  assert float(proxy(x_any, key, np.zeros(6, np.int32))) == zen.DEGENERATE
  # the running variance of the stem BN after the two passes: 0.81 + 0.09 v1 + 0.1 v2, with the
  # unbiased batch variances of an independently computed stem convolution
  k = np.asarray(v["params"]["conv_stem"]["kernel"])
  conv = lambda x: jax.lax.conv_general_dilated(x, k, (1, 1), ((1, 1), (1, 1)),
                                                dimension_numbers=("NHWC", "HWIO", "NHWC"))
  var1, var2 = (np.var(np.asarray(conv(x), np.float64), axis=(0, 1, 2), ddof=1) for x in (x1, xm))
  np.testing.assert_allclose(s2["batch_stats"]["bn_stem"]["var"], 0.81 + 0.09 * var1 + 0.1 * var2,
                             rtol=1e-4)


def test_gaussian_initialisation():
  _, _, v = _inputs_and_variables(jax.random.key(1))
  p = v["params"]
  big = np.asarray(p["cells_2"]["conv3x3"]["kernel"])           # 1 x 6 x 3 x 3 x 16 x 16 values
  assert abs(big.mean()) < 0.05 and abs(big.std() - 1.0) < 0.05   # N(0, 1), not fan-in scaled
  assert np.all(np.asarray(p["cells_0"]["bn3x3"]["scale"]) == 1.0)
  assert np.all(np.asarray(p["cells_0"]["bn3x3"]["bias"]) == 0.0)
  assert np.all(np.asarray(p["classifier"]["bias"]) == 0.0)
  assert np.all(np.asarray(v["batch_stats"]["bn_head"]["var"]) == 1.0)
  assert np.all(np.asarray(v["batch_stats"]["bn_head"]["mean"]) == 0.0)
