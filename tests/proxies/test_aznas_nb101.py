"""AZ-NAS on NAS-Bench-101: the space's block shapes against the shapes the network's hooks see,
per-block entropies and trainabilities against an independent build (the discrete
:class:`NB101Net`'s stem and cells run one block at a time, one ``jax.vjp`` per block as the
reference's ``autograd.grad`` calls, statistics in float64 numpy), the Kaiming fan-in
initialisation of the real layers, and the engine (``auto`` scores the components eagerly)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import engine, spaces
from jaxnas.data import Batch
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import aznas, get_proxy, supported_proxies
from jaxnas.spaces.nb101 import net as N
from jaxnas.spaces.nb101 import space as SP
from jaxnas.spaces.nb101 import spec as S
from tests.conftest import tiny_batch_of
from tests.proxies.test_aznas import np_entropy, np_trainability
from tests.spaces.nb101.common import INCEPTION, MIXED, TRIVIAL, to_masked_layout

#: two stacks of two cells: plain blocks and a block that max-pools its input
CFG = dict(stem_channels=8, num_stacks=2, modules_per_stack=2)
SPACE = spaces.get_space("nb101")
X_SHAPE = (aznas.BATCH_SIZE, 8, 8, 3)
NAMES = ("az_expressivity", "az_progressivity", "az_trainability")
SPECS = {"inception": INCEPTION, "mixed": MIXED, "trivial": TRIVIAL}


def _net(arch, **hooks):
  return spaces.Network(SPACE, SPACE.model(**CFG, weight_init="kaiming_normal", unrolled=True)
                        .clone(**hooks), arch)


@functools.lru_cache(maxsize=None)
def _init(cfg=tuple(CFG.items()), weight_init="kaiming_normal"):
  return jax.jit(lambda k, x, a: SPACE.model(**dict(cfg), weight_init=weight_init).init(k, x, a))


def reference(v, x, spec, key_r):
  """(e, t) per block of the discrete network built independently from the same weights."""
  p = S.prune(spec)
  dp = N.discrete_params(to_masked_layout(v["params"]), spec, **CFG)
  stem = N.ConvBNReLU(CFG["stem_channels"], 3).apply({"params": dp["stem"]}, x)
  blocks = []
  for name, s, _, c in N.cells(**CFG):
    def block(h, name=name, pool=s > 0 and name.endswith("_0"), c=c):
      return N.Cell(p, c).apply({"params": dp[name]}, N.max_pool(h, 2, 2) if pool else h)
    blocks.append(block)
  feats = [stem]
  for block in blocks:
    feats.append(block(feats[-1]))
  e = np.array([np_entropy(f) for f in feats])
  t = []
  for l, block in enumerate(blocks, 1):
    r = aznas.rademacher(key_r, l, feats[l].shape)
    _, pull = jax.vjp(block, feats[l - 1])
    t.append(np_trainability(pull(r)[0], r))
  return e, np.array(t)


def test_block_shapes_are_what_the_hooks_see_in_both_builds():
  arch = SPACE.encode(INCEPTION)
  x = jnp.zeros(X_SHAPE)
  inputs, outputs = {}, {}

  def block_input(h, block):
    inputs[int(block)] = tuple(h.shape)
    return h

  def tap(site, h, block, part):
    if site in ("stem", "cell"):
      outputs[int(block)] = tuple(h.shape)
    return jnp.zeros(())

  v = _init()(jax.random.key(0), x, arch)
  _net(arch, block_input=block_input, tap=tap).apply(v, x, mutable=["intermediates"])
  shapes = SP.block_shapes(X_SHAPE, **CFG)
  assert len(shapes) == 4 and shapes[2][0][1:3] == (8, 8) and shapes[2][1][1:3] == (4, 4)
  assert [i for i, _ in shapes] == [inputs[b] for b in (1, 2, 3, 4)]
  assert [o for _, o in shapes] == [outputs[b] for b in (1, 2, 3, 4)]
  assert outputs[0] == shapes[0][0]
  # the masked build (traced architecture) calls block_input on the same inputs
  inputs.clear()
  masked = SPACE.model(**CFG).clone(block_input=lambda h, b: inputs.setdefault(b, h.shape) and h)
  jax.eval_shape(lambda a: masked.apply(v, x, a), arch)
  assert sorted(inputs) == [1, 2, 3, 4] and [tuple(inputs[b]) for b in (1, 2, 3, 4)] == [
      i for i, _ in shapes]
  assert SP.block_shapes((2, 9, 9, 3), **CFG)[2][1] == (2, 5, 5, 16)   # 'same' pooling


@pytest.mark.parametrize("name", ["inception", "mixed", "trivial"])
def test_entropies_and_trainabilities_against_the_discrete_network(name):
  spec = SPECS[name]
  arch = SPACE.encode(spec)
  batch = Batch(jnp.zeros((1, 8, 8, 3)), None)
  x = aznas.gaussian_input(jax.random.key(2), batch)
  v = _init()(jax.random.key(3), x, arch)
  net = _net(arch)
  k_r = jax.random.key(4)
  e_ref, t_ref = reference(v, x, spec, k_r)
  assert len(e_ref) == 5
  e, ok = aznas.block_entropies(net, v, x)
  assert np.all(np.asarray(ok))
  np.testing.assert_allclose(e, e_ref, rtol=1e-4, atol=1e-5)
  t, ident, e2, _ = aznas.block_trainabilities(net, v, x, k_r)
  assert not np.any(np.asarray(ident)) and np.all(np.isfinite(t_ref))
  np.testing.assert_allclose(t, t_ref, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(e2, e, rtol=1e-6)
  assert np.all(e_ref <= np.log([8, 8, 8, 16, 16]) + 1e-6)
  # the registered proxies: the same quantities on the Gaussian input drawn from their key
  key = jax.random.key(5)
  k_x, k_r = jax.random.split(key)
  e_ref, t_ref = reference(v, aznas.gaussian_input(k_x, batch), spec, k_r)
  got = [float(get_proxy(n).fn(net, v, batch, key)) for n in NAMES]
  np.testing.assert_allclose(got[0], e_ref.sum(), rtol=1e-5)
  np.testing.assert_allclose(got[1], np.min(np.diff(e_ref)), atol=1e-4)
  np.testing.assert_allclose(got[2], t_ref.mean(), rtol=1e-4)


def _layers(params):
  """``{layer: kernel}`` of a compact parameter tree (convs and the classifier)."""
  return {k: (p["conv"]["kernel"] if "conv" in p else p["kernel"]) for k, p in params.items()}


def test_kaiming_normal_draws_every_real_layer_from_its_fan_in():
  """Shared layout (sliced by ``compact_params``) and compact layers alike: each real kernel's
  mean square is 2 / fan_in within 5 standard errors of a chi-square mean; BN scale 1, bias 0,
  classifier bias 0. The default (``'nasbench'``) draws the stem from its fan-out instead."""
  cfg = dict(stem_channels=32, num_stacks=2, modules_per_stack=1)
  arch = SPACE.encode(INCEPTION)
  x = jnp.zeros((1, 8, 8, 3))
  shared = _init(tuple(cfg.items()))(jax.random.key(0), x, arch)["params"]
  compact = SPACE.model(**cfg, weight_init="kaiming_normal", unrolled=True, compact=True).init(
      jax.random.key(1), x, arch)["params"]
  trees = {"shared": SP.compact_params(shared, arch, **cfg), "compact": compact}
  assert jax.tree_util.tree_structure(trees["shared"]) == jax.tree_util.tree_structure(compact)
  for which, tree in trees.items():
    kernels = _layers(tree)
    assert len(kernels) == 2 + 2 * (4 + 4)   # stem, classifier; per cell 4 convs, 4 projections
    for layer, k in kernels.items():
      k = np.asarray(k, np.float64)
      ratio = np.mean(k**2) / (2.0 / np.prod(k.shape[:-1]))
      assert abs(ratio - 1) < 5 * np.sqrt(2.0 / k.size), (which, layer, k.shape, ratio)
    for layer, p in tree.items():
      if "bn" in p:
        np.testing.assert_array_equal(p["bn"]["scale"], 1.0)
        np.testing.assert_array_equal(p["bn"]["bias"], 0.0)
    np.testing.assert_array_equal(tree["classifier"]["bias"], 0.0)
  default = _init(tuple(cfg.items()), "nasbench")(jax.random.key(0), x, arch)["params"]
  k = np.asarray(default["stem"]["conv"]["kernel"], np.float64)
  assert abs(np.mean(k**2) / (2.0 / (9 * 32)) - 1) < 5 * np.sqrt(2.0 / k.size)
  with pytest.raises(JaxnasInputError, match="weight_init='xavier'.*nasbench, kaiming_normal"):
    SPACE.model(weight_init="xavier")


def test_engine_scores_the_components_eagerly_and_aggregates_them():
  assert {"az_expressivity", "az_progressivity", "az_trainability", "aznas"} <= set(
      supported_proxies(SPACE))
  archs = np.stack([SPACE.encode(s) for s in (INCEPTION, MIXED, TRIVIAL)])
  batch = tiny_batch_of(1)
  names = list(NAMES) + ["az_complexity"]
  got = engine.score(SPACE, archs, names, batch, config=CFG, ids=[4, 9, 2], seed=2)   # eager
  # per architecture: its id fixes its key, whatever the order and the chunks
  again = engine.score(SPACE, archs[::-1], names, batch, config=CFG, ids=[2, 9, 4], seed=2,
                       chunk_size=1, mode="eager")
  for n in names:
    assert got[n].shape == (3,) and np.all(np.isfinite(got[n])), n
    assert np.all(got[n] > aznas.DEGENERATE), n
    np.testing.assert_array_equal(got[n], again[n][::-1], err_msg=n)
  np.testing.assert_allclose(got["az_complexity"],
                             SPACE.count_flops(archs, **CFG, convention="macs", resolution=8)
                             / 1e6 + 10 / 1e6, rtol=1e-6)
  pooled = aznas.aggregate({n: got[n] for n in names})
  assert pooled.shape == (3,) and np.all(pooled <= 0)
  with pytest.raises(JaxnasInputError, match="NB101's tap .*mode='eager'"):
    engine.score(SPACE, archs[:1], ["az_expressivity"], batch, config=CFG, mode="map")
