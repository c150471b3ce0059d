"""The DARTS Flax networks: operations against independent references, supernet (discrete and
mixture paths) against the evaluation network, BatchNorm statistics, parameter and MAC counts."""

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import _compat
from jaxnas.errors import JaxnasInputError
from jaxnas.ntk import per_sample
from jaxnas.spaces import darts
from jaxnas.spaces.darts import blocks, layers, operations, topology
from jaxnas.spaces.params import broadcast_to_leaves
from tests.conftest import tiny_batch_of

C, L = 4, 4          # cells: normal, reduce, reduce (FactorizedReduce pre0), normal (FR pre0)
X = tiny_batch_of(4, 8).x


def _archs():
  return [darts.encode("DARTS_V2"), np.asarray(darts.sample(jax.random.key(7), 1)[0])]


# ------------------------------------------------------------------ operations


def _lax_depthwise(x, w, s, p, d):
  return jax.lax.conv_general_dilated(x, w, (s, s), ((p, p), (p, p)), rhs_dilation=(d, d),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      feature_group_count=x.shape[-1])


@pytest.mark.parametrize("k, s, p, d, hw", [(3, 1, 1, 1, (8, 8)), (5, 2, 2, 1, (8, 8)),
                                           (3, 2, 2, 2, (8, 8)), (5, 1, 4, 2, (8, 8)),
                                           (3, 2, 1, 1, (7, 6)), (5, 2, 4, 2, (9, 7)),
                                           (3, 1, 0, 1, (5, 6)), (3, 2, 0, 1, (6, 7))])
def test_shifted_depthwise_matches_grouped_conv(k, s, p, d, hw):
  x = jax.random.normal(jax.random.key(0), (2, *hw, 3))
  w = jax.random.normal(jax.random.key(1), (k, k, 1, 3))
  f = lambda x, w: layers.depthwise_shifted(x, w, s, p, d)
  ref = lambda x, w: _lax_depthwise(x, w, s, p, d)
  chex.assert_trees_all_close(jax.jit(f)(x, w), ref(x, w), atol=1e-5, rtol=1e-5)
  ct = jax.random.normal(jax.random.key(2), ref(x, w).shape)
  g = jax.jit(jax.grad(lambda x, w: jnp.sum(f(x, w) * ct), (0, 1)))(x, w)
  g_ref = jax.grad(lambda x, w: jnp.sum(ref(x, w) * ct), (0, 1))(x, w)
  chex.assert_trees_all_close(g, g_ref, atol=1e-4, rtol=1e-4)
  if (k, s, hw) != (5, 2, (8, 8)):
    return
  # forward mode, vmap and second order go through the custom JVP as well
  t = jax.jvp(f, (x, w), (0.3 * x, w))[1]
  chex.assert_trees_all_close(t, jax.jvp(ref, (x, w), (0.3 * x, w))[1], atol=1e-4, rtol=1e-4)
  ws = jnp.stack([w, 2 * w])
  chex.assert_trees_all_close(jax.vmap(lambda w: f(x, w))(ws), jax.vmap(lambda w: ref(x, w))(ws),
                              atol=1e-4, rtol=1e-4)
  hv = jax.grad(lambda w: jnp.sum(jax.grad(lambda w: jnp.sum(jnp.sin(f(x, w))))(w) ** 2))(w)
  hv_ref = jax.grad(lambda w: jnp.sum(jax.grad(lambda w: jnp.sum(jnp.sin(ref(x, w))))(w) ** 2))(w)
  chex.assert_trees_all_close(hv, hv_ref, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("s", [1, 2])
def test_shifted_depthwise_backward_pads_the_cotangent_once(s):
  """The backward pass XLA:CPU compiles: the input cotangent is padded once and read through
  k*k slices (a pad per window is a bounds-checked loop 10-20x slower on XLA:CPU), and the
  input is padded once for all windows: two pads in all, whatever k."""
  x = jnp.ones((2, 8, 8, 3))
  for k in (3, 5):
    w = jnp.ones((k, k, 1, 3))
    jaxpr = jax.make_jaxpr(jax.grad(lambda x, w: jnp.sum(
        jnp.sin(layers.depthwise_shifted(x, w, s, k // 2, 1))), (0, 1)))(x, w)
    # (lax transposes a pad into a negative pad, a crop XLA turns into a slice: not counted)
    pads = [e for e in _eqns(jaxpr.jaxpr) if e.primitive.name == "pad" and e.outvars[0].aval.ndim
            == 4 and any(v > 0 for cfg in e.params["padding_config"] for v in cfg)]
    assert len(pads) == 2, (k, s, len(pads))


def _eqns(jaxpr):
  """Every equation of ``jaxpr`` and of the jaxprs nested in its equations (checkpoint, pjit)."""
  for e in jaxpr.eqns:
    yield e
    for v in e.params.values():
      for sub in (v if isinstance(v, (tuple, list)) else (v,)):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          yield from _eqns(inner)


def test_shifted_depthwise_backward_keeps_only_the_padded_input(capsys):
  """Reverse mode keeps the padded input and the kernel, not the k*k windows (nor k*k broadcast
  kernel rows): 2 k*k input-sized arrays per convolution took a DARTS genotype past 20 GB."""
  from jax.ad_checkpoint import print_saved_residuals  # pylint: disable=g-import-not-at-top
  x, w = jnp.ones((2, 8, 8, 3)), jnp.ones((5, 5, 1, 3))
  print_saved_residuals(lambda x, w: layers.depthwise_shifted(x, w, 2, 4, 2), x, w)
  shapes = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
  size = lambda sh: np.prod([int(n) for n in sh[sh.index("[") + 1:-1].split(",") if n])
  assert [sh for sh in shapes if size(sh) >= x.size] == ["f32[2,16,16,3]"], shapes


def test_pooling_and_factorized_reduce_follow_pytorch():
  x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=np.nan)
  for stride in (1, 2):
    mx, av = np.asarray(layers.max_pool_3x3(jnp.asarray(x), stride)), np.asarray(
        layers.avg_pool_3x3(jnp.asarray(x), stride))
    for i in range(0, 6, stride):
      for j in range(0, 6, stride):
        win = xp[:, i:i + 3, j:j + 3, :]
        np.testing.assert_allclose(mx[:, i // stride, j // stride], np.nanmax(win, (1, 2)),
                                   rtol=1e-6)
        np.testing.assert_allclose(av[:, i // stride, j // stride], np.nanmean(win, (1, 2)),
                                   rtol=1e-5)
  a = np.random.default_rng(1).normal(size=(1, 1, 3, 2)).astype(np.float32)
  b = np.random.default_rng(2).normal(size=(1, 1, 3, 2)).astype(np.float32)
  y, _ = operations.factorized_reduce(jnp.asarray(x), dict(a=a, b=b, bn=None), "none")
  r = np.maximum(x, 0)
  ref = np.concatenate([r[:, 0::2, 0::2] @ a[0, 0], r[:, 1::2, 1::2] @ b[0, 0]], -1)
  np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-5, atol=1e-6)


class _Edge(nn.Module):
  """One stride-2 supernet edge (all 8 ops, FactorizedReduce skip, BN after pools)."""

  @nn.compact
  def __call__(self, x, w):
    params = {}
    for k in range(8):
      p, _ = blocks.declare_op(self, k, 3, 2, False, True, "batch", "torch")
      if p is not None:
        params[topology.OP_KEYS[k]] = p
    params = blocks._drop_states(params)
    mixed = operations.mixed_edge(x, w, params, 2, "batch", "lax")[0]
    ops = jnp.stack([operations.mixed_edge(x, k, params, 2, "batch", "lax")[0] for k in range(8)])
    switched = jax.vmap(lambda k: operations.mixed_edge(x, k, params, 2, "batch", "lax")[0])(
        jnp.arange(8))
    return mixed, ops, switched


def test_mixed_edge_is_the_weighted_sum_of_its_ops():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  w = jax.random.normal(jax.random.key(1), (8,))
  e = _Edge()
  v = e.init(jax.random.key(2), x, w)
  mixed, ops, switched = jax.jit(e.apply)(v, x, w)
  assert ops.shape == (8, 2, 4, 4, 3)
  np.testing.assert_allclose(mixed, jnp.einsum("k,k...->...", w, ops), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(switched, ops, rtol=1e-6, atol=1e-6)
  assert float(jnp.abs(ops[0]).max()) == 0.0
  assert all(float(jnp.abs(ops[k]).max()) > 0 for k in range(1, 8))


# ------------------------------------------------------------ supernet vs evaluation


@functools.lru_cache(maxsize=None)
def _supernet(affine=True, pool_bn=False, conv_impl="auto"):
  """The supernet, its variables and its compiled ``apply`` (updated statistics too), shared by
  every test of a configuration (compilation dominates these tests)."""
  net = darts.model(C=C, L=L, affine=affine, pool_bn=pool_bn, conv_impl=conv_impl)
  v = jax.jit(net.init)(jax.random.key(0), X, darts.encode("DARTS_V2"))
  apply = jax.jit(lambda v, x, a: net.apply(v, x, a, mutable=["batch_stats"]))
  return net, v, apply


@functools.lru_cache(maxsize=None)
def _supernet_grad(affine=True, pool_bn=False, conv_impl="auto"):
  """``d/dp sum(sin(logits))`` of the supernet at ``(p, v, x, arch)``, compiled once."""
  net = _supernet(affine, pool_bn, conv_impl)[0]
  return jax.jit(jax.grad(lambda p, v, x, a: jnp.sum(jnp.sin(net.apply({**v, "params": p}, x,
                                                                          a)))))


@functools.lru_cache(maxsize=None)
def _evalnet(arch_key):
  arch = np.asarray(arch_key, np.int32).reshape(2, 8, 2)
  net = darts.model(fixed_arch=arch, C=C, L=L)
  return net, jax.jit(lambda v, x: net.apply(v, x, mutable=["batch_stats"]))


def _rel_close(a, b, rtol=1e-4, atol=1e-5):
  chex.assert_trees_all_close(a, b, rtol=rtol, atol=atol)


def test_supernet_equals_evaluation_network_on_the_genotype():
  net, v, apply = _supernet()
  for arch in _archs():
    ev, ev_apply = _evalnet(tuple(map(tuple, arch.reshape(-1, 2).tolist())))
    vd = {k: darts.discrete_params(t, arch, C=C, L=L) for k, t in v.items()}
    # the evaluation network's own init has exactly the restricted tree's structure and shapes
    chex.assert_trees_all_equal_shapes(vd, jax.eval_shape(ev.init, jax.random.key(0), X))
    y_e, st_e = ev_apply(vd, X)
    y_s, st_s = apply(v, X, arch)                       # lax.switch on each edge
    y_w, st_w = apply(v, X, darts.to_weights(arch))     # one-hot mixture weights
    assert y_s.shape == (4, 10)
    _rel_close(y_s, y_e)
    _rel_close(y_w, y_e)
    # running statistics: the used ops' BNs move exactly as in the evaluation network
    _rel_close(darts.discrete_params(st_s["batch_stats"], arch, C=C, L=L), st_e["batch_stats"])
    _rel_close(darts.discrete_params(st_w["batch_stats"], arch, C=C, L=L), st_e["batch_stats"])
    # and unused ops keep theirs: edge sites not kept keep mean 0 / var 1
    mask = broadcast_to_leaves(darts.active_mask(st_s["batch_stats"], arch), st_s["batch_stats"])
    moved = jax.tree_util.tree_map(
        lambda s, s0, m: float(jnp.max(jnp.abs(s - s0) * (1 - m))), st_s["batch_stats"],
        v["batch_stats"], mask)
    assert max(jax.tree_util.tree_leaves(moved)) == 0.0


def test_vmap_over_architectures_equals_one_by_one():
  net, v, _ = _supernet()
  archs = np.asarray(darts.sample(jax.random.key(8), 3))
  f = jax.jit(lambda a: net.apply(v, X, a))
  singles = jnp.stack([f(a) for a in archs])
  batched = jax.jit(jax.vmap(lambda a: net.apply(v, X, a)))(archs)
  chex.assert_shape(batched, (3, 4, 10))
  _rel_close(batched, singles)
  assert float(jnp.abs(singles[0] - singles[1]).max()) > 1e-4   # architectures matter


def test_alpha_gradient_of_the_search_supernet():
  # search configuration (no affine, BN after pools), shifted depthwise convs: the gradient w.r.t.
  # the mixture weights is finite, non-zero on every real op, zero on nothing it should not be, and
  # matches a central finite difference along a random direction
  net, v, _ = _supernet(False, True, "shifted")
  alpha = 1e-3 * jax.random.normal(jax.random.key(3), darts.SPACE.alpha_shape)
  f = lambda a: jnp.sum(jnp.sin(net.apply(v, X, a)))
  value_and_grad = jax.jit(jax.value_and_grad(f))
  val, g = value_and_grad(alpha)
  assert g.shape == (2, 14, 8) and bool(jnp.all(jnp.isfinite(g)))
  assert float(jnp.abs(g[..., 0]).max()) == 0.0              # 'none' contributes nothing
  assert float(jnp.abs(g[..., 1:]).min()) > 0.0
  u = jax.random.normal(jax.random.key(4), alpha.shape)
  u = u / jnp.linalg.norm(u)
  eps = 0.05
  fd = (value_and_grad(alpha + eps * u)[0] - value_and_grad(alpha - eps * u)[0]) / (2 * eps)
  np.testing.assert_allclose(float(jnp.vdot(g, u)), float(fd), rtol=2e-2, atol=1e-4)


def test_parameter_gradients_match_between_supernet_and_evaluation_network():
  net, v, _ = _supernet()
  arch = darts.encode("DARTS_V2")
  ev, _ = _evalnet(tuple(map(tuple, arch.reshape(-1, 2).tolist())))
  vd = {k: darts.discrete_params(t, arch, C=C, L=L) for k, t in v.items()}
  loss_e = lambda p: jnp.sum(jnp.sin(ev.apply({**vd, "params": p}, X)))
  g_all = _supernet_grad()(v["params"], v, X, arch)
  g_e = jax.jit(jax.grad(loss_e))(vd["params"])
  _rel_close(darts.discrete_params(g_all, arch, C=C, L=L), g_e, rtol=1e-3, atol=1e-5)
  # parameters of unused ops get exactly zero gradient; used ones do not
  mask = broadcast_to_leaves(darts.active_mask(g_all, arch), g_all)
  dead = jax.tree_util.tree_map(lambda g, m: float(jnp.max(jnp.abs(g) * (1 - m))), g_all, mask)
  assert max(jax.tree_util.tree_leaves(dead)) == 0.0
  # leaves of op kinds the genotype never uses are all-masked; every other leaf gets gradient
  live = [float(jnp.max(jnp.abs(g) * m)) for g, m in
          zip(jax.tree_util.tree_leaves(g_all), jax.tree_util.tree_leaves(mask)) if jnp.any(m > 0)]
  assert len(live) > 10 and min(live) > 0.0


def test_shifted_and_lax_depthwise_give_the_same_supernet_gradients():
  """The whole supernet's parameter gradients with the shifted depthwise convolution (its custom
  JVP, the CPU path at full size) equal those with grouped lax convolutions, for a genotype
  (``lax.switch`` inside ``lax.scan``) and for mixture weights."""
  v = _supernet()[1]
  arch = darts.encode("DARTS_V2")
  for a in (arch, darts.to_weights(arch) + 0.1):
    g_shift = _supernet_grad(conv_impl="shifted")(v["params"], v, X, a)
    g_lax = _supernet_grad(conv_impl="lax")(v["params"], v, X, a)
    _rel_close(g_shift, g_lax, rtol=1e-3, atol=1e-5)
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree_util.tree_leaves(g_shift)) > 0


def test_unrolled_equals_scanned_outputs_gradients_and_states():
  """``unrolled=True`` on a concrete genotype (Python loops, only the kept edges, each op a
  compiled block) gives the scanned supernet's logits and running statistics (kept edges moved,
  the others untouched) in the evaluation (affine) and the search (BN after pools)
  configurations, and its parameter gradients; a traced architecture and mixture weights take
  the scanned build."""
  net, v, apply = _supernet()
  un = net.clone(unrolled=True)
  for arch in _archs():
    y_s, st_s = apply(v, X, arch)
    y_u, st_u = un.apply(v, X, arch, mutable=["batch_stats"])
    _rel_close(y_u, y_s)
    _rel_close(st_u, st_s)
  loss = lambda mod: (lambda p: jnp.sum(jnp.sin(mod.apply({**v, "params": p}, X, arch))))
  _rel_close(jax.grad(loss(un))(v["params"]), _supernet_grad()(v["params"], v, X, arch),
             rtol=1e-3, atol=1e-5)
  _rel_close(jax.jit(un.apply)(v, X, arch), y_s)     # traced: the scanned build
  w = darts.to_weights(arch)
  _rel_close(un.apply(v, X, w), y_s)
  # bn='none' (synflow's copy) and per-edge op indices (2, 14) with a node fed by no edge
  nobn = dict(bn="none")
  _rel_close(un.clone(**nobn).apply(v, X, arch), net.clone(**nobn).apply(v, X, arch))
  edges = np.asarray(topology.edge_ops(arch)).copy()
  edges[0, 2:5] = 0                                       # node 3 of the normal cell: no input
  # inside jit too: a genotype closed over is concrete while tracing, so still unrolled
  unrolled_jit = jax.jit(lambda v: un.apply(v, X, edges))
  assert "cond" not in str(jax.make_jaxpr(unrolled_jit)(v))   # no lax.switch: the kept ops only
  _rel_close(unrolled_jit(v), jax.jit(net.apply)(v, X, edges))
  # the search configuration: cell BNs without affine parameters, BN after pooling
  net, v, apply = _supernet(False, True, "shifted")
  y_s, st_s = apply(v, X, arch)
  y_u, st_u = net.clone(unrolled=True).apply(v, X, arch, mutable=["batch_stats"])
  _rel_close(y_u, y_s)
  _rel_close(st_u, st_s)


#: every kind of ReLU: sep/dil convs on both cell types, a stride-2 skip (FactorizedReduce) from
#: each reduction-cell input, identity skips, pools
PROBE_GENOTYPE = {
    "normal": [["sep_conv_3x3", 0], ["dil_conv_3x3", 1], ["skip_connect", 0], ["sep_conv_5x5", 2],
               ["max_pool_3x3", 1], ["avg_pool_3x3", 3], ["dil_conv_5x5", 4], ["skip_connect", 2]],
    "reduce": [["skip_connect", 0], ["sep_conv_3x3", 1], ["dil_conv_5x5", 0], ["skip_connect", 2],
               ["avg_pool_3x3", 1], ["sep_conv_5x5", 3], ["skip_connect", 1], ["dil_conv_3x3", 4]],
    "normal_concat": [2, 3, 4, 5], "reduce_concat": [2, 3, 4, 5]}


def test_nwot_on_the_unrolled_supernet_equals_codes_of_every_relu_of_the_evaluation_network(
    monkeypatch):
  """NASWOT on DARTS (the unrolled supernet's ReLU probe, engine's 'eager' executor) equals
  log|det K| in float64 with K summed over every ReLU input of the evaluation network of the
  genotype (recorded by wrapping ``jax.nn.relu``; independent build and layout), same weights and
  batch; the ReLUs are each cell's two preprocessing ReLUs and those heading its kept ops (the
  stem and head have none). The scanned supernet refuses the probe by name."""
  from jaxnas import engine
  cfg = dict(C=4, L=3, affine=True, pool_bn=False)   # cells: normal, reduce, reduce (FR pre0)
  arch = darts.encode(PROBE_GENOTYPE)
  batch = tiny_batch_of(8)
  got = engine.score("darts", arch[None], ["nwot"], batch, config=cfg, mode="eager")["nwot"]
  # the engine's weights (the layout does not depend on the genotype; the unrolled init reuses the
  # blocks compiled above)
  v = darts.model(**cfg, unrolled=True).init(
      jax.random.split(jax.random.fold_in(jax.random.key(0), 0))[0], batch.x, arch)
  vd = {k: darts.discrete_params(t, arch, C=4, L=3) for k, t in v.items()}
  seen, relu = [], jax.nn.relu
  monkeypatch.setattr(jax.nn, "relu", lambda h: seen.append(np.asarray(h)) or relu(h))
  darts.model(fixed_arch=arch, C=4, L=3).apply(vd, batch.x, mutable=["batch_stats"])
  monkeypatch.setattr(jax.nn, "relu", relu)
  per_op = {"sep_conv_3x3": 2, "sep_conv_5x5": 2, "dil_conv_3x3": 1, "dil_conv_5x5": 1}
  n_relu = [2 + sum(per_op.get(op, 0) + (t == "reduce" and op == "skip_connect" and j < 2)
                    for op, j in PROBE_GENOTYPE[t]) for t in ("normal", "reduce")]
  assert n_relu == [8, 10] and len(seen) == n_relu[0] + 2 * n_relu[1]
  codes = [(h.reshape(len(h), -1) > 0).astype(np.float64) for h in seen]
  k = sum(c @ c.T + (1 - c) @ (1 - c).T for c in codes)
  np.testing.assert_allclose(got[0], np.linalg.slogdet(k)[1], rtol=1e-5)
  with pytest.raises(JaxnasInputError, match="relu_probe.*mode='eager'"):
    engine.score("darts", arch[None], ["nwot"], batch, config=cfg, mode="map")
  # 'auto' scores the probe's proxies eagerly (unrolled_only), the others never (auto_eager)
  from jaxnas.engine import scoring
  from jaxnas.proxies import get_proxy
  sp = darts.SPACE
  for name, eager in (("nwot", True), ("ensemble", True), ("grad_norm", False)):
    fn = scoring._build_score_fn(sp, get_proxy(name), cfg, "auto", 4, None)
    assert isinstance(fn, scoring.EagerScoreFn) == eager, name


# ------------------------------------------------------------------ counts


def _size(tree, mask=None):
  if mask is None:
    return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(tree))
  m = broadcast_to_leaves(mask, tree)
  return int(sum(float(jnp.sum(jnp.broadcast_to(mi, p.shape)))
                 for p, mi in zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(m))))


def test_param_count_equals_parameter_trees():
  archs = _archs() + [darts.encode("DARTS_V1")]
  x32 = jnp.zeros((1, 32, 32, 3))
  for i, arch in enumerate(archs):
    for kw in (dict(C=4, L=4), dict(C=6, L=5, num_classes=7, auxiliary=i == 0),
               dict(C=4, L=3, bn="none")):
      ev = darts.model(fixed_arch=arch, **kw)
      shapes = jax.eval_shape(ev.init, jax.random.key(0), x32)
      assert _size(shapes["params"]) == darts.count_params(arch, **kw), (i, kw)
  # the supernet's parameters used by an architecture, in its search configuration too
  for kw in (dict(C=4, L=4, affine=True), dict(C=4, L=4, affine=False, pool_bn=True)):
    sup = darts.model(**kw)
    shapes = jax.eval_shape(sup.init, jax.random.key(0), X, archs[0])["params"]
    for arch in archs:
      assert _size(shapes, darts.active_mask(shapes, arch)) == darts.count_params(arch, **kw)
    # and mixture weights mark the same layers active as the discrete architecture
    w_mask = darts.active_mask(shapes, darts.to_weights(archs[1]))
    d_mask = darts.active_mask(shapes, archs[1])
    chex.assert_trees_all_close(w_mask, d_mask)


def _jaxpr_macs(jaxpr):
  """Multiply-accumulates of every conv and dot in a jaxpr (recursively)."""
  total = 0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "conv_general_dilated":
      out = eqn.outvars[0].aval.shape
      k = eqn.invars[1].aval.shape                               # HWIO, I = C_in / groups
      total += int(np.prod(out)) * k[0] * k[1] * k[2]
    elif eqn.primitive.name == "dot_general":
      (lc, _), _ = eqn.params["dimension_numbers"]
      contracted = int(np.prod([eqn.invars[0].aval.shape[d] for d in lc]))
      total += int(np.prod(eqn.outvars[0].aval.shape)) * contracted
    for sub in _compat.jaxprs_in_params(eqn.params):
      total += _jaxpr_macs(sub)
  return total


def test_mac_count_equals_the_evaluation_networks_convolutions():
  for arch in _archs():
    for kw, res in ((dict(C=4, L=4), 16), (dict(C=4, L=5, auxiliary=True), 32)):
      ev = darts.model(fixed_arch=arch, conv_impl="lax", **kw)
      x = jnp.zeros((1, res, res, 3))
      v = jax.eval_shape(ev.init, jax.random.key(0), x)
      fn = (lambda v, x: ev.apply(v, x, mutable=["intermediates"])) if kw.get("auxiliary") else (
          ev.apply)
      macs = _jaxpr_macs(jax.make_jaxpr(fn)(v, x).jaxpr)
      assert macs == darts.count_flops(arch, resolution=res, **kw), kw


# ----------------------------------------------------------- evaluation extras, errors


def test_auxiliary_head_and_drop_path():
  arch = darts.encode("DARTS_V2")
  ev = darts.model(fixed_arch=arch, C=4, L=3, auxiliary=True)
  x = tiny_batch_of(4, 32).x
  v = jax.jit(ev.init)(jax.random.key(0), x)
  assert "auxiliary" in v["params"]

  @jax.jit
  def run(v, p, key):
    y, st = ev.apply(v, x, drop_prob=p, rngs={"dropout": key}, mutable=["intermediates"])
    return y, st["intermediates"]["aux_logits"][0]

  y0, aux = run(v, 0.0, jax.random.key(1))
  assert aux.shape == (4, 10) and bool(jnp.all(jnp.isfinite(aux)))
  _rel_close(y0, jax.jit(ev.apply)(v, x))                 # drop probability 0 keeps everything
  y1, _ = run(v, 0.5, jax.random.key(1))
  y2, _ = run(v, 0.5, jax.random.key(2))
  assert not np.allclose(y1, y0) and not np.allclose(y1, y2)
  _rel_close(y1, run(v, 0.5, jax.random.key(1))[0])       # deterministic for a key
  with pytest.raises(JaxnasInputError, match="auxiliary head needs an 8x8 to 10x10 feature map"):
    jax.eval_shape(ev.init, jax.random.key(0), jnp.zeros((1, 16, 16, 3)))


def test_input_validation():
  net, v, _ = _supernet()
  with pytest.raises(JaxnasInputError, match="got shape \\(2, 14\\) dtype float32"):
    net.apply(v, X, jnp.zeros((2, 14)))
  with pytest.raises(JaxnasInputError, match="must be NHWC"):
    net.apply(v, X[0], darts.encode("DARTS_V2"))
  with pytest.raises(JaxnasInputError, match="multiples of 4"):
    net.apply(v, jnp.ones((2, 6, 6, 3)), darts.encode("DARTS_V2"))
  with pytest.raises(JaxnasInputError, match="DARTS L must be a positive integer, got 0"):
    darts.model(L=0).init(jax.random.key(0), X, darts.encode("DARTS_V2"))
  with pytest.raises(JaxnasInputError, match="unknown depthwise conv implementation 'fft'"):
    darts.model(conv_impl="fft").init(jax.random.key(0), X, darts.encode("DARTS_V2"))
  ev = darts.model(fixed_arch="DARTS_V2", C=4, L=3)
  with pytest.raises(JaxnasInputError, match="holds its genotype in fixed_arch"):
    ev.init(jax.random.key(0), X, darts.encode("DARTS_V2"))


# ------------------------------------------------------------ per-sample routes


def test_auto_impl_counts_the_samples_of_a_per_sample_vmap(monkeypatch):
  """Under a per-sample ``vmap`` a layer sees one sample; ``auto`` chooses by the whole batch."""
  from jaxnas.spaces import ops
  x1 = jnp.zeros((1, 8, 8, 4))
  monkeypatch.setattr(layers, "AUTO_SHIFTED_MIN_SIZE", 4 * x1.size)
  assert layers.auto_impl(x1) == "lax"
  with ops.samples_vmapped(4):
    assert ops.vmapped_samples() == 4
    assert layers.auto_impl(x1) == "shifted"
    with ops.samples_vmapped(2):
      assert layers.auto_impl(x1) == "lax"
  assert ops.vmapped_samples() == 1


def _per_sample_setup(semantics):
  net = darts.model(C=2, L=2, bn="running" if semantics == "independent" else "batch")
  a = darts.encode("DARTS_V2")
  v = net.init(jax.random.key(0), X, a)
  cot = jax.nn.one_hot(jnp.arange(X.shape[0]) % 10, 10)
  return lambda p: per_sample.per_sample_grads(
      lambda p, xb: net.apply({**v, "params": p}, xb, a), p, X, cot, semantics), v["params"]


def _spy_on_auto_impl(monkeypatch):
  """The samples count every depthwise ``auto`` choice is told, as a list that grows."""
  seen, auto = [], layers.auto_impl

  def spy(x):
    seen.append(layers.L.vmapped_samples())
    return auto(x)

  monkeypatch.setattr(layers, "auto_impl", spy)
  return seen


def test_independent_samples_choose_each_depthwise_convolution_by_the_whole_batch(monkeypatch):
  """The independent-samples route runs the supernet one sample at a time under ``vmap``: every
  depthwise convolution's ``auto`` choice is told the number of samples."""
  fn, params = _per_sample_setup("independent")
  seen = _spy_on_auto_impl(monkeypatch)
  jax.make_jaxpr(fn)(params)
  assert seen and set(seen) == {X.shape[0]}


def test_per_sample_shares_agree_with_shifted_and_grouped_depthwise(monkeypatch):
  """HNAS' shares: every depthwise ``auto`` choice is told the number of samples, and the shares
  are the same with every depthwise convolution shifted (per-sample kernels through
  its custom JVP under ``vmap``) or grouped lax."""
  fn, params = _per_sample_setup("shares")
  seen = _spy_on_auto_impl(monkeypatch)
  got = []
  for min_size in (0, 1 << 40):
    monkeypatch.setattr(layers, "AUTO_SHIFTED_MIN_SIZE", min_size)
    got.append(jax.jit(fn)(params))
  assert seen and set(seen) == {X.shape[0]}   # each choice knew the samples
  chex.assert_trees_all_close(got[0], got[1], rtol=2e-4, atol=1e-5)
