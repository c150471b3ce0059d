"""The NB201 Flax network: vmappable build vs discrete build, vmap vs one-by-one, jit vs no-jit,
BatchNorm semantics, parameter and FLOP counts."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from jaxnas.errors import JaxnasInputError
from jaxnas.spaces import nb201
from jaxnas.spaces import ops as L
from jaxnas.spaces.params import broadcast_to_leaves
from tests.conftest import TINY

ARCHS = [0, 180, 229, 9930, 15624]


@functools.lru_cache(maxsize=None)
def _setup(bn="batch", **kw):
  net = nb201.NB201Net(bn=bn, **TINY, **kw)
  x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
  v = net.init(jax.random.key(0), x, jnp.zeros(6, jnp.int32))
  return net, x, v


@functools.lru_cache(maxsize=None)
def _scanned(bn):
  """The shared (``lax.switch``) build's forward, parameter gradient of ``sum(sin(logits))`` and
  updated statistics, compiled once per BN mode for every test and architecture (the
  architecture is an argument: compilation dominates these tests)."""
  net = _setup(bn)[0]
  loss = lambda p, v, x, a: jnp.sum(jnp.sin(net.apply({**v, "params": p}, x, a)))
  return (jax.jit(lambda v, x, a: net.apply(v, x, a)), jax.jit(jax.grad(loss)),
          jax.jit(lambda v, x, a: net.apply(v, x, a, mutable=["batch_stats"])[1]))


def _rel_close(a, b, rtol=1e-4, atol=1e-6):
  chex.assert_trees_all_close(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("bn", ["batch", "none", "running"])
@pytest.mark.parametrize("index", [0, 180, 9930, 15624])
def test_vmappable_equals_discrete_outputs_and_gradients(bn, index):
  net, x, v = _setup(bn)
  if bn == "running":  # give the running statistics non-trivial values first
    _, st = net.clone(bn="batch").apply(v, x, nb201.from_index(index), mutable=["batch_stats"])
    v = {**v, **st}
  a = nb201.from_index(index)
  disc = nb201.NB201Net(bn=bn, fixed_arch=tuple(a), **TINY)
  vd = {k: nb201.discrete_params(t, a) for k, t in v.items()}
  # the discrete network's own init has exactly the pruned tree's structure
  vd_init = disc.init(jax.random.key(0), x)
  chex.assert_trees_all_equal_shapes(vd, vd_init)
  # the architecture is traced (jit argument): this is the lax.switch path
  apply_v, grad_v, _ = _scanned(bn)
  _rel_close(apply_v(v, x, a), jax.jit(disc.apply)(vd, x))

  loss_d = lambda p: jnp.sum(jnp.sin(disc.apply({**vd, "params": p}, x)))
  g_all = grad_v(v["params"], v, x, a)
  gv = nb201.discrete_params(g_all, a)
  gd = jax.jit(jax.grad(loss_d))(vd["params"])
  _rel_close(gv, gd, rtol=1e-3, atol=1e-5)
  # parameters of unused ops get exactly zero gradient in the vmappable build
  mask = broadcast_to_leaves(nb201.active_mask(g_all, a), g_all)
  dead = jax.tree_util.tree_map(lambda g, m: float(jnp.max(jnp.abs(g) * (1 - m))), g_all, mask)
  assert max(jax.tree_util.tree_leaves(dead)) == 0.0
  live = jax.tree_util.tree_map(
      lambda g, m: float(jnp.max(jnp.abs(g) * m)) if float(jnp.max(m)) > 0 else 1.0, g_all, mask)
  assert min(jax.tree_util.tree_leaves(live)) > 0.0


def test_one_hot_mixture_equals_switch():
  net, x, v = _setup()
  f = jax.jit(lambda v, x, a: net.apply(v, x, a))
  for i in ARCHS:
    a = nb201.from_index(i)
    _rel_close(f(v, x, a), f(v, x, nb201.one_hot(a)))


def test_mixture_is_weighted_sum_of_ops():
  # With weights w on one edge and one-hot elsewhere, the output is linear in w only if the rest of
  # the cell is linear; check instead the edge-level identity on a 1-cell net with N=1 and C=4:
  # w = 0.5*onehot(a) + 0.5*onehot(b) differs from both pure archs (the supernet really mixes).
  net, x, v = _setup(bn="none")
  a, b = nb201.from_index(180), nb201.from_index(213)
  w = 0.5 * nb201.one_hot(a) + 0.5 * nb201.one_hot(b)
  y = net.apply(v, x, w)
  assert not np.allclose(y, net.apply(v, x, a)) and not np.allclose(y, net.apply(v, x, b))
  assert np.all(np.isfinite(np.asarray(y)))


def test_taps_equal_in_shared_and_discrete_builds_and_hooks_keep_the_output():
  """``tap``: every site once per tensor the architecture computes, with its block and part,
  the same in the switch, vmap and discrete builds; an identity ``block_input`` changes nothing."""
  from jaxnas.spaces import sum_probes
  from jaxnas.spaces.nb201.net import TAP_SITES, num_blocks
  net, x, v = _setup()
  nb = num_blocks(TINY["N"]) + 1                     # blocks and the head

  def tap(site, h, block, part):
    i = TAP_SITES.index(site)
    return {"count": jnp.zeros(len(TAP_SITES)).at[i].set(1.0),
            "sq": jnp.zeros(len(TAP_SITES)).at[i].set(jnp.sum(h ** 2)),
            "block": jnp.zeros(nb).at[block].add(1.0), "part": jnp.zeros(8).at[part].add(1.0)}

  def taps(n, v, *a):
    _, st = n.apply(v, x, *a, mutable=["intermediates"])
    return sum_probes(st["intermediates"], "tap")

  a = nb201.from_index(180)           # conv3x3, avg_pool, conv3x3 | conv1x1, conv3x3, none
  shared = jax.jit(lambda v, a: taps(net.clone(tap=tap), v, a))(v, a)
  vm = jax.jit(jax.vmap(lambda a: taps(net.clone(tap=tap), v, a)))(jnp.stack([a, a]))
  disc = nb201.NB201Net(fixed_arch=tuple(a), tap=tap, **TINY)
  vd = {k: nb201.discrete_params(t, a) for k, t in v.items()}
  ref = jax.jit(lambda v: taps(disc, v))(vd)
  for k in ref:
    _rel_close(shared[k], ref[k])
    _rel_close(vm[k][1], ref[k])
  count = dict(zip(TAP_SITES, np.asarray(ref["count"]).astype(int)))
  assert count == {"stem": 1, "cell": 3, "reduction": 2, "relu": 3 * 4 + 4, "conv": 3 * 4 + 4,
                   "none": 3, "skip": 0, "pool": 3, "shortcut_pool": 2, "shortcut": 2,
                   "head_bn": 1, "head_relu": 1}
  # events per block: stem 0; cells 1, 3, 5 (4 convs x 2 + pool + none + output); reductions
  # 2, 4 (2 convs x 2 + shortcut pool, shortcut, output); head 6 (BN, ReLU)
  np.testing.assert_array_equal(ref["block"], [1, 11, 7, 11, 7, 11, 2])
  # per part: edge e of each cell (part 0 also the cell output), conv_a / conv_b of reductions
  # (part 0 also their shortcut and output), 0 for the stem and head
  np.testing.assert_array_equal(ref["part"], [1 + 3 * 3 + 2 * 5 + 2, 3 + 2 * 2, 6, 6, 6, 3, 0, 0])
  feats = net.apply(v, x, a, mutable=["intermediates"])[1]["intermediates"]["features"][0]
  np.testing.assert_allclose(ref["sq"][TAP_SITES.index("head_relu")], jnp.sum(feats ** 2),
                             rtol=1e-5)
  seen = net.clone(block_input=lambda h, block: h * (1.0 + 0.0 * block))
  _rel_close(jax.jit(lambda v, a: seen.apply(v, x, a))(v, a), net.apply(v, x, a))


class VmapAndJitTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters("batch", "none")
  def test_jit_matches_no_jit(self, bn):
    net, x, v = _setup(bn)
    f = self.variant(lambda v, x, a: net.apply(v, x, a))
    ref = net.apply(v, x, nb201.from_index(180))
    chex.assert_trees_all_close(f(v, x, nb201.from_index(180)), ref, rtol=1e-5, atol=1e-6)

  def test_vmap_over_architectures_equals_one_by_one(self):
    net, x, v = _setup()
    archs = nb201.from_index(np.array(ARCHS))
    batched = jax.jit(jax.vmap(lambda a: net.apply(v, x, a)))(archs)
    mapped = jax.jit(lambda A: jax.lax.map(lambda a: net.apply(v, x, a), A))(archs)
    single = jax.jit(lambda a: net.apply(v, x, a))
    singles = jnp.stack([single(a) for a in archs])
    chex.assert_shape(batched, (len(ARCHS), 4, 10))
    chex.assert_trees_all_close(batched, singles, rtol=1e-4, atol=1e-6)
    chex.assert_trees_all_close(mapped, singles, rtol=1e-4, atol=1e-6)

  def test_one_compilation_serves_every_architecture(self):
    net, x, v = _setup()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(a):
      return net.apply(v, x, a)

    for i in ARCHS:
      f(nb201.from_index(i))


def test_batch_norm_matches_pytorch_train_mode_formula():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(5, 3, 3, 4)).astype(np.float32) * 3 + 1
  scale, bias = rng.normal(size=4).astype(np.float32), rng.normal(size=4).astype(np.float32)
  st = L.BNState(np.zeros(4, np.float32), np.ones(4, np.float32))
  y, new = L.batch_norm(jnp.asarray(x), scale, bias, st, "batch")
  mu = x.mean((0, 1, 2))
  var = ((x - mu) ** 2).mean((0, 1, 2))  # biased
  np.testing.assert_allclose(y, (x - mu) / np.sqrt(var + 1e-5) * scale + bias, rtol=1e-5, atol=1e-5)
  n = 5 * 3 * 3
  np.testing.assert_allclose(new.mean, 0.1 * mu, rtol=1e-5)
  np.testing.assert_allclose(new.var, 0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)
  y2, _ = L.batch_norm(jnp.asarray(x), scale, bias, new, "running")
  np.testing.assert_allclose(y2, (x - new.mean) / np.sqrt(new.var + 1e-5) * scale + bias,
                             rtol=1e-5, atol=1e-5)
  with pytest.raises(JaxnasInputError, match="unknown BatchNorm mode 'train'"):
    L.batch_norm(jnp.asarray(x), scale, bias, st, "train")


def test_avg_pool_excludes_padding_from_count():
  x = np.arange(2 * 4 * 4 * 1, dtype=np.float32).reshape(2, 4, 4, 1)
  y = np.asarray(L.avg_pool_3x3(jnp.asarray(x)))
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=np.nan)
  ref = np.empty_like(x)
  for i in range(4):
    for j in range(4):
      ref[:, i, j, :] = np.nanmean(xp[:, i:i + 3, j:j + 3, :], axis=(1, 2))
  np.testing.assert_allclose(y, ref, rtol=1e-6)


def test_running_statistics_are_updated_in_batch_mode():
  net, x, v = _setup()
  a = nb201.from_index(180)
  _, st = jax.jit(lambda v: net.apply(v, x, a, mutable=["batch_stats"]))(v)
  before, after = v["batch_stats"]["bn_stem"]["var"], st["batch_stats"]["bn_stem"]["var"]
  assert not np.allclose(before, after)
  # the unused conv site of an edge keeps its statistics; edge 0 of arch 180 is nor_conv_3x3
  new, old = st["batch_stats"]["cells_0"], v["batch_stats"]["cells_0"]
  np.testing.assert_array_equal(new["bn1x1"]["var"][0, 0], old["bn1x1"]["var"][0, 0])
  assert not np.allclose(new["bn3x3"]["var"][0, 0], 1.0)
  # edge 5 is none: neither of its BNs moves
  np.testing.assert_array_equal(new["bn3x3"]["var"][:, 5], old["bn3x3"]["var"][:, 5])
  # and the discrete build updates exactly the same statistics
  disc = nb201.NB201Net(fixed_arch=tuple(a), **TINY)
  vd = {k: nb201.discrete_params(t, a) for k, t in v.items()}
  _, std = jax.jit(lambda v: disc.apply(v, x, mutable=["batch_stats"]))(vd)
  chex.assert_trees_all_close(nb201.discrete_params(st["batch_stats"], a), std["batch_stats"],
                              rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- counts

PARAMS_M = {180: 0.830426, 213: 0.344346, 229: 0.101306, 245: 0.344346, 286: 0.559386}
FLOPS_M = {180: 121.054912, 213: 49.415872, 229: 14.886592, 245: 51.996352, 286: 82.163392}


@pytest.mark.parametrize("index", sorted(PARAMS_M))
def test_param_and_flop_references(index):
  a = nb201.from_index(index)
  assert abs(nb201.count_params(a) / 1e6 - PARAMS_M[index]) <= 1e-3 * PARAMS_M[index]
  assert abs(nb201.count_flops(a) / 1e6 - FLOPS_M[index]) <= 1e-3 * FLOPS_M[index]
  # exact agreement where the references are exact integers
  assert nb201.count_params(a) == round(PARAMS_M[index] * 1e6)


def test_params_with_100_classes():
  assert nb201.count_params(nb201.from_index(180), num_classes=100) == 836276


def test_analytic_param_count_equals_discrete_network_tree():
  # independent check: the size of the discrete network's own parameter tree
  rng = np.random.default_rng(0)
  for i in rng.choice(15625, 12, replace=False):
    a = nb201.from_index(int(i))
    for kw in (dict(), dict(bn="none"), dict(cell_bn_affine=False, cell_conv_bias=True),
               dict(bn="none", reduction_bn="batch", cell_bn_affine=False, cell_conv_bias=True)):
      d = nb201.NB201Net(fixed_arch=tuple(a), C=4, N=2, num_classes=7, **kw)
      v = jax.eval_shape(d.init, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
      n = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(v["params"]))
      assert n == nb201.count_params(a, C=4, N=2, num_classes=7, **kw), (i, kw)


def test_count_functions_vectorise_and_trace():
  archs = nb201.all_archs()
  p = nb201.count_params(archs)
  f = nb201.count_flops(archs)
  assert p.shape == f.shape == (15625,) and p.dtype == np.int64
  pj = jax.jit(jax.vmap(lambda a: nb201.count_params(a)))(jnp.asarray(archs[:50]))
  np.testing.assert_allclose(pj, p[:50], rtol=1e-6)
  macs = nb201.count_flops(archs, convention="macs")
  assert np.all(macs <= f) and macs.min() > 0
  # the all-conv3x3 cell costs 220.1 M MACs (NB201 paper's upper end)
  assert abs(nb201.count_flops(np.full(6, 3), convention="macs") / 1e6 - 220.11969) < 1e-3


def test_input_validation():
  net, x, v = _setup()
  with pytest.raises(JaxnasInputError, match="must be NHWC"):
    net.apply(v, x[0], nb201.from_index(0))
  with pytest.raises(JaxnasInputError, match="batch is empty"):
    net.apply(v, x[:0], nb201.from_index(0))
  with pytest.raises(JaxnasInputError, match="multiples of 4"):
    net.apply(v, jnp.ones((2, 6, 6, 3)), nb201.from_index(0))
  with pytest.raises(JaxnasInputError, match="shape \\(6,\\) op indices or \\(6, 5\\) weights"):
    net.apply(v, x, jnp.zeros(5, jnp.int32))
  with pytest.raises(JaxnasInputError, match="unknown NB201 option 'channels'"):
    nb201.model(channels=3)


# ---------------------------------------------------------------- the unrolled build (eager executor)


@pytest.mark.parametrize("bn", ["batch", "none", "running"])
def test_unrolled_equals_scanned_outputs_gradients_and_statistics(bn):
  """``unrolled=True`` on a concrete arch: Python loops and compiled blocks, only the chosen ops,
  ``none`` edges skipped; outputs, gradients (zero for unused ops) and updated running statistics
  equal the scanned ``lax.switch`` build's: all ``none``; node 1 unreached (its out-edges see
  zeros); every op."""
  net, x, v = _setup(bn)
  if bn == "running":
    _, st = net.clone(bn="batch").apply(v, x, nb201.from_index(180), mutable=["batch_stats"])
    v = {**v, **st}
  unrolled = net.clone(unrolled=True)
  scanned, grad_scanned, stats_scanned = _scanned(bn)
  loss = lambda a: (lambda p: jnp.sum(jnp.sin(unrolled.apply({**v, "params": p}, x, a))))
  for a in ([0, 0, 0, 0, 0, 0], [0, 3, 3, 1, 2, 3], [3, 2, 4, 1, 3, 4]):
    a = np.asarray(a, np.int32)
    _rel_close(unrolled.apply(v, x, np.asarray(a)), scanned(v, x, a))
    g_unr = jax.grad(loss(np.asarray(a)))(v["params"])
    _rel_close(g_unr, grad_scanned(v["params"], v, x, a), rtol=1e-3, atol=1e-5)
    if bn == "batch":
      _, st_unr = unrolled.apply(v, x, np.asarray(a), mutable=["batch_stats"])
      _rel_close(st_unr, stats_scanned(v, x, a))


def test_unrolled_hooks_equal_scanned_hooks():
  """relu_probe, tap, block_input and gates see the same tensors unrolled as scanned."""
  from jaxnas.spaces import sum_probes
  net, x, _ = _setup(gates=True)
  v = net.init(jax.random.key(0), x, jnp.zeros(6, jnp.int32))
  tap = lambda site, h, block, part: jnp.sum(h ** 2) * (1.0 + block) * (2.0 + part)
  probe = lambda h: jnp.sum(jnp.abs(h), axis=(1, 2, 3))
  hooked = dict(tap=tap, relu_probe=probe, block_input=lambda h, b: h * (1.0 + 0.1 * b))

  def run(n, a):
    y, st = n.apply(v, x, a, mutable=["intermediates"])
    return y, sum_probes(st["intermediates"], "tap"), sum_probes(st["intermediates"])

  ref_fn = jax.jit(lambda a: run(net.clone(**hooked), a))
  # the gates' gradient (fisher's activation x gradient sums), unrolled vs scanned
  gl = lambda n, a: jax.grad(lambda g: jnp.sum(n.apply({**v, "gates": g}, x, a) ** 2))(
      v["gates"])
  gl_ref = jax.jit(lambda a: gl(net, a))
  def cell_only(site, h, block, part):   # zeros except at cell outputs, and says so
    return jnp.sum(h ** 2) * (1.0 + block) if site == "cell" else jnp.zeros(())
  cell_only.sites = ("cell",)

  def cell_taps(n, a):
    return sum_probes(n.apply(v, x, a, mutable=["intermediates"])[1]["intermediates"], "tap")
  cells_ref = jax.jit(lambda a: cell_taps(net.clone(tap=cell_only), a))
  for a in ([0, 0, 0, 0, 0, 0], [0, 3, 3, 1, 2, 4]):
    a = np.asarray(a, np.int32)
    _rel_close(cell_taps(net.clone(tap=cell_only, unrolled=True), a), cells_ref(a))
    _rel_close(run(net.clone(unrolled=True, **hooked), np.asarray(a)), ref_fn(a))
    _rel_close(gl(net.clone(unrolled=True), np.asarray(a)), gl_ref(a), rtol=1e-3, atol=1e-5)


def test_unrolled_falls_back_to_the_scanned_build_for_traced_or_mixture_archs():
  net, x, v = _setup()
  unrolled = net.clone(unrolled=True)
  a = nb201.from_index(180)
  _rel_close(jax.jit(lambda a: unrolled.apply(v, x, a))(a), net.apply(v, x, a))
  w = nb201.one_hot(a)
  _rel_close(unrolled.apply(v, x, w), net.apply(v, x, w))
  with pytest.raises(JaxnasInputError, match="fixed_arch"):
    nb201.NB201Net(fixed_arch=tuple(a), unrolled=True, **TINY).init(jax.random.key(0), x)


def test_unrolled_blocks_compile_once_for_every_architecture():
  """The eager executor's promise: after one architecture of each op mix, no new compilation."""
  from jaxnas.spaces.nb201.net import _conv_block, _pool_block
  net, x, v = _setup()
  unrolled = net.clone(unrolled=True)
  f = lambda a: jax.grad(lambda p: jnp.sum(unrolled.apply({**v, "params": p}, x, a)))(v["params"])
  f(np.array([3, 2, 4, 1, 3, 2], np.int32))  # each op with and without a partial sum
  f(np.array([4, 3, 2, 0, 0, 0], np.int32))
  sizes = (_conv_block._cache_size(), _pool_block._cache_size())
  for i in (180, 229, 9930, 15624, 4242):
    f(nb201.from_index(i))
  assert (_conv_block._cache_size(), _pool_block._cache_size()) == sizes
