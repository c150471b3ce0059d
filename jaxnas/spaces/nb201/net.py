"""The NAS-Bench-201 network as Flax modules (Dong & Yang, ICLR 2020; methods-spec §1.1).

Stem conv3x3+BN; three stages of ``N`` cells at C, 2C, 4C joined by ResNet basic blocks with stride
2; cell edges ReLU -> Conv -> BN (``nor_conv_*``), avg pool 3x3 (padding excluded from the count),
identity, or zeros; head BN-ReLU-global pool-Dense.

Two builds share one parameter layout:

* **shared** (``fixed_arch=None``): the architecture is an *input*. Each stage stores its cells'
  edge parameters stacked, ``(N, 6, ...)``, under ``cells_<stage>/{conv1x1,conv3x3,bn1x1,bn3x3}``,
  and runs ``lax.scan`` over cells and, inside a cell, over the 6 edges (a buffer of the 4 nodes is
  carried). Each edge picks its op with ``lax.switch``: inside ``lax.map`` only the chosen op runs;
  under ``vmap`` the switch becomes a select over all ops. One compiled edge body per stage keeps
  compilation short whatever ``N``.
* **discrete** (``fixed_arch=...``): the network of one architecture, holding only its ops'
  parameters under ``cells_<stage>/cell_<i>/edge_<e>/...``; :func:`.layout.discrete_params` maps the
  shared tree onto it.

Hooks (all off by default; with none set, the computation is unchanged): ``relu_probe`` (a
function of every ReLU input), ``tap`` (a function of named tensors of the forward pass: block
outputs, op outputs, ...) and ``block_input`` (a map applied to every block's input). Blocks are
numbered in forward order: 0 the stem, then the ``N`` cells of stage 0, reduction 1, the cells of
stage 1, reduction 2, the cells of stage 2 (:func:`block_index`; ``3N + 3`` in all).
"""

from __future__ import annotations

import functools
from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasInputError
from jaxnas.spaces import ops as L

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NONE, SKIP, CONV1, CONV3, POOL = range(5)
#: (to_node, from_node) of each edge, in arch-string order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_EDGES, NUM_OPS = len(EDGES), len(OPS)
_EDGE_TO = np.array([t for t, _ in EDGES], np.int32)
_EDGE_FROM = np.array([f for _, f in EDGES], np.int32)
#: (op index, kernel size, name suffix) of the two conv ops.
CONV_SITES = ((CONV1, 1, "1x1"), (CONV3, 3, "3x3"))


#: Names of the tensors a ``tap`` sees (see ``NB201Net.tap``).
TAP_SITES = ("stem", "cell", "reduction", "relu", "conv", "none", "skip", "pool",
             "shortcut_pool", "shortcut", "head_bn", "head_relu")


def num_blocks(N: int) -> int:
  """Number of blocks (stem, 3N cells, 2 reductions) of an NB201 network with N cells per stage."""
  return 3 * N + 3


def block_index(stage: int, cell: Optional[int], N: int):
  """Forward-order index of cell ``cell`` of ``stage`` (0, 1, 2), or of the reduction block that
  opens ``stage`` (1, 2) when ``cell`` is None. The stem is block 0."""
  if cell is None:
    return stage * (N + 1)
  return stage * (N + 1) + 1 + cell


def _tree_add(a, b):
  return jax.tree_util.tree_map(jnp.add, a, b)


def _sow_probe(module: nn.Module, value, name: str = "relu_probe"):
  if value is None:
    return
  module.sow("intermediates", name, value, init_fn=lambda: None,
             reduce_fn=lambda a, b: b if a is None else _tree_add(a, b))


def _zeros_like_probe(probe_fn, x):
  return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype),
                                jax.eval_shape(probe_fn, x))


def relu_conv_bn(x, kernel, conv_bias, gate, scale, bn_bias, state, mode, stride=1, padding=0,
                 nested=False, tap=None):
  """ReLU -> Conv -> (bias) -> (gate) -> BN; returns ``(y, new_running_state)``.

  ``nested=True`` uses :func:`jaxnas.spaces.ops.conv2d_nested` (inside switch/scan bodies).
  ``tap(site, value)``, when given, is called on the ReLU output (``'relu'``) and on the conv
  output before BN (``'conv'``).
  """
  conv = L.conv2d_nested if nested else L.conv2d
  r = jax.nn.relu(x)
  if tap is not None:
    tap("relu", r)
  h = conv(r, kernel.astype(x.dtype), stride, padding)
  if conv_bias is not None:
    h = h + conv_bias.astype(h.dtype)
  if gate is not None:
    h = h * gate[:, None, None, :].astype(h.dtype)
  if tap is not None:
    tap("conv", h)
  return L.batch_norm(h, scale, bn_bias, state, mode)


def _recorder(tap_fn):
  """``(record, total)``: ``record(site, x, *extra)`` stores ``tap_fn(site, x, *extra)``;
  ``total(zero)`` is ``zero`` plus every stored value (``zero`` may be None)."""
  values = []

  def record(site, x, *extra):
    values.append(tap_fn(site, x, *extra))

  def total(zero):
    out = zero
    for v in values:
      out = v if out is None else _tree_add(out, v)
    return out

  return (None if tap_fn is None else record), total


def edge_forward(x, op, sites, mode: str, track: bool, probe_fn: Optional[Callable],
                 tap_fn: Optional[Callable] = None):
  """One cell edge. ``op``: int (Python or traced, ``lax.switch``) or weights ``(5,)`` (mixture).

  ``sites['1x1' | '3x3']`` hold that conv's ``kernel, bias, gate, scale, bn_bias, state`` for this
  edge. ``tap_fn(site, value)`` (optional) is called on the op's tensors: ``'none'``, ``'skip'``,
  ``'pool'`` (the op output) or ``'relu'`` and ``'conv'`` (a conv op). Returns
  ``(y, (state_1x1, state_3x3), probe, tapped)`` (``tapped``: the sum of the tap values, None
  without ``tap_fn``).
  """
  # running mode reads the stored statistics; batch mode only carries them when updating
  states0 = tuple(sites[t]["state"] if (track or mode == "running") else None
                  for _, _, t in CONV_SITES)
  probe_zero = None if probe_fn is None else _zeros_like_probe(probe_fn, x)
  tap_zero = None if tap_fn is None else _zeros_like_probe(lambda v: tap_fn("none", v), x)

  def branch(k):
    def f(x):
      states, probe = list(states0), probe_zero
      record, total = _recorder(tap_fn)
      if k == NONE:
        y = jnp.zeros_like(x)
      elif k == SKIP:
        y = x
      elif k == POOL:
        y = L.avg_pool_3x3(x)
      else:
        j, ks = (0, 1) if k == CONV1 else (1, 3)
        s = sites[CONV_SITES[j][2]]
        y, states[j] = relu_conv_bn(x, s["kernel"], s["bias"], s["gate"], s["scale"],
                                    s["bn_bias"], states0[j], mode, padding=ks // 2,
                                    nested=not isinstance(op, (int, np.integer)), tap=record)
        if probe_fn is not None:
          probe = probe_fn(x)
      if record is not None and k in (NONE, SKIP, POOL):
        record({NONE: "none", SKIP: "skip", POOL: "pool"}[k], y)
      return y, tuple(states), probe, total(tap_zero)
    return f

  if isinstance(op, (int, np.integer)):
    return branch(int(op))(x)
  if jnp.ndim(op) == 0:
    return jax.lax.switch(op, [branch(k) for k in range(NUM_OPS)], x)
  outs = [branch(k)(x) for k in range(NUM_OPS)]
  y = sum(op[k].astype(x.dtype) * outs[k][0] for k in range(NUM_OPS))
  states = (outs[CONV1][1][0], outs[CONV3][1][1])
  probe = None
  if probe_fn is not None:
    probe = jax.tree_util.tree_map(
        lambda p1, p3: (op[CONV1] != 0).astype(p1.dtype) * p1 + (op[CONV3] != 0).astype(
            p3.dtype) * p3, outs[CONV1][2], outs[CONV3][2])
  tapped = None
  if tap_fn is not None:  # the ops of non-zero weight, each once
    tapped = jax.tree_util.tree_map(
        lambda *ts: sum((op[k] != 0).astype(t.dtype) * t for k, t in enumerate(ts)),
        *[o[3] for o in outs])
  return y, states, probe, tapped


class _Stage(nn.Module):
  """``N`` cells with stacked parameters ``(N, 6, ...)``, scanned over cells and edges."""
  C: int
  N: int
  bn: str
  affine: bool
  conv_bias: bool
  weight_init: str
  gates: bool
  relu_probe: Optional[Callable]
  stage: int = 0
  tap: Optional[Callable] = None
  block_input: Optional[Callable] = None
  unrolled: bool = False

  @nn.compact
  def __call__(self, h, arch):
    stack = (self.N, NUM_EDGES)
    sites, bns = {}, {}
    for _, ks, tag in CONV_SITES:
      kern, b, g = L.ConvKernel(self.C, self.C, ks, self.conv_bias, weight_init=self.weight_init,
                                stack=stack, gate_batch=h.shape[0] if self.gates else 0,
                                name="conv" + tag)()
      scale = bn_bias = state = None
      if self.bn != "none":
        bns[tag] = L.BNVars(self.C, self.affine, stack=stack, name="bn" + tag)
        scale, bn_bias, state = bns[tag]()
      sites[tag] = dict(kernel=kern, bias=b, gate=g, scale=scale, bn_bias=bn_bias, state=state)
    track = self.bn == "batch" and bool(bns) and bns["1x1"].tracking()
    probe_fn, tap, block_input = self.relu_probe, self.tap, self.block_input
    mode = self.bn

    def finish(h, probe, tapped, states):
      if track:
        for j, (_, _, tag) in enumerate(CONV_SITES):
          bns[tag].write(states[j])
      _sow_probe(self, probe)
      _sow_probe(self, tapped, "tap")
      return h

    if self.unrolled:
      return finish(*_unrolled_cells(h, tuple(int(a) for a in arch), sites, mode, track,
                                     probe_fn, tap, block_input,
                                     block_index(self.stage, 0, self.N)))
    # block and edge indices are scanned only when a hook reads them
    indexed = tap is not None or block_input is not None
    cell_ids = jnp.arange(self.N, dtype=jnp.int32) if indexed else None
    edge_ids = jnp.arange(NUM_EDGES, dtype=jnp.int32) if tap is not None else None
    first = block_index(self.stage, 0, self.N)

    def cell(carry, xs):
      x, probe, tapped = carry
      cell_sites, i = xs
      blk = None if i is None else first + i
      if block_input is not None:
        x = block_input(x, blk)
      nodes = jnp.zeros((4,) + x.shape, x.dtype).at[0].set(x)

      def edge(carry, xs):
        nodes, probe, tapped = carry
        to, frm, op, s, e = xs
        tap_fn = None if tap is None else (lambda site, v: tap(site, v, blk, e))
        y, states, pr, tp = edge_forward(nodes[frm], op, s, mode, track, probe_fn, tap_fn)
        nodes = nodes.at[to].add(y)
        if probe_fn is not None:
          probe = jax.tree_util.tree_map(jnp.add, probe, pr)
        if tap is not None:
          tapped = _tree_add(tapped, tp)
        return (nodes, probe, tapped), states

      (nodes, probe, tapped), states = jax.lax.scan(
          jax.checkpoint(edge), (nodes, probe, tapped),
          (_EDGE_TO, _EDGE_FROM, arch, cell_sites, edge_ids))
      if tap is not None:
        tapped = _tree_add(tapped, tap("cell", nodes[3], blk, 0))
      return (nodes[3], probe, tapped), states

    probe0 = None if probe_fn is None else _zeros_like_probe(probe_fn, h)
    tap0 = None if tap is None else _zeros_like_probe(lambda v: tap("cell", v, first, 0), h)
    # Rematerialise cells and edges in reverse mode: storing each iteration's residuals (for every
    # branch of the switch) costs more than recomputing the forward pass on CPU.
    (h, probe, tapped), states = jax.lax.scan(jax.checkpoint(cell), (h, probe0, tap0),
                                              (sites, cell_ids))
    return finish(h, probe, tapped, states)

def is_concrete_ops(arch) -> bool:
  """Whether ``arch`` is a concrete (not traced) array of 6 integer op indices."""
  if isinstance(arch, jax.core.Tracer):
    return False
  a = np.asarray(arch)
  return a.shape == (NUM_EDGES,) and a.dtype.kind in "iu"


def _take(stacked, i, e):
  """The variables of edge ``e`` of cell ``i`` from stacked ``(N, 6, ...)`` leaves."""
  return jax.tree_util.tree_map(lambda a: a[i, e], stacked)


@functools.partial(jax.jit, static_argnames=("mode", "padding", "taps"))
def _conv_block(acc, x, stacked, i, e, mode: str, padding: int, taps: bool = False):
  """``acc + ReLU-Conv-BN(x)`` (``acc`` may be None) with the variables of edge ``e`` of cell
  ``i`` (traced indices into the stacked leaves: one program for every edge, whose transpose
  always has the same shape); returns ``(sum, new_state)``, and with ``taps`` also the
  ``[('relu', ReLU output), ('conv', conv output)]`` a ``tap`` hook sees."""
  site = _take(stacked, i, e)
  seen = []
  y, st = relu_conv_bn(x, site["kernel"], site["bias"], site["gate"], site["scale"],
                       site["bn_bias"], site["state"], mode, padding=padding,
                       tap=(lambda name, v: seen.append(v)) if taps else None)
  out = (y if acc is None else acc + y), st
  return out + (seen,) if taps else out


@jax.jit
def _pool_block(acc, x):
  """``acc + avg_pool_3x3(x)`` (``acc`` may be None) as one compiled block."""
  y = L.avg_pool_3x3(x)
  return y if acc is None else acc + y


def _unrolled_cells(h, arch: tuple, sites, mode: str, track: bool, probe_fn, tap, block_input,
                    first: int):
  """The cells of one stage for a concrete ``arch``: Python loops over cells and edges running
  only the chosen op of each edge, each ReLU-Conv-BN and pool a compiled block (shared by every
  architecture), ``none`` edges skipped. Same values as the scanned build with ``lax.switch``;
  hooks see the same tensors (``tap`` gets the blocks' intermediate outputs).

  ``sites[tag]`` hold the stacked ``(N, 6, ...)`` variables; returns
  ``(h, probe, tapped, (states_1x1, states_3x3))`` (states restacked when ``track``).
  """
  n = jax.tree_util.tree_leaves(sites["1x1"]["kernel"])[0].shape[0]
  use_state = track or mode == "running"
  per = {}
  for _, _, tag in CONV_SITES:
    per[tag] = dict(sites[tag])
    if not use_state:
      per[tag]["state"] = None
  states = {tag: [[None] * NUM_EDGES for _ in range(n)] for _, _, tag in CONV_SITES}
  probe = None if probe_fn is None else _zeros_like_probe(probe_fn, h)
  tapped = None
  tap_sites = None if tap is None else getattr(tap, "sites", None)

  def wants(site):
    return tap is not None and (tap_sites is None or site in tap_sites)

  def record(site, v, blk, e):
    nonlocal tapped
    if not wants(site):  # a tap declaring its ``sites`` returns zeros elsewhere: skip the call
      return
    t = tap(site, v, jnp.int32(blk), jnp.int32(e))
    tapped = t if tapped is None else _tree_add(tapped, t)

  for i in range(n):
    blk = first + i
    if block_input is not None:
      h = block_input(h, jnp.int32(blk))
    nodes = [h, None, None, None]
    for e, ((to, frm), op) in enumerate(zip(EDGES, arch)):
      x = nodes[frm]
      if op == NONE:  # contributes exactly zero; no parameters
        if tap is not None:
          record("none", jnp.zeros_like(h), blk, e)
        continue
      if x is None:  # an input node no edge reached: its value is zero
        x = jnp.zeros_like(h)
      if op == SKIP:
        nodes[to] = x if nodes[to] is None else nodes[to] + x
        if tap is not None:
          record("skip", x, blk, e)
      elif op == POOL:
        if not wants("pool"):
          nodes[to] = _pool_block(nodes[to], x)
        else:
          y = _pool_block(None, x)
          record("pool", y, blk, e)
          nodes[to] = y if nodes[to] is None else nodes[to] + y
      else:
        j, ks = (0, 1) if op == CONV1 else (1, 3)
        tag = CONV_SITES[j][2]
        taps = wants("relu") or wants("conv")
        out = _conv_block(nodes[to], x, per[tag], np.int32(i), np.int32(e), mode, ks // 2,
                          taps=taps)
        nodes[to], states[tag][i][e] = out[:2]
        if taps:
          record("relu", out[2][0], blk, e)
          record("conv", out[2][1], blk, e)
        if probe_fn is not None:
          probe = _tree_add(probe, probe_fn(x))
    h = jnp.zeros_like(h) if nodes[3] is None else nodes[3]
    if tap is not None:
      record("cell", h, blk, 0)
  restacked = [None, None]
  if track:
    for j, (_, _, tag) in enumerate(CONV_SITES):
      old = sites[tag]["state"]
      new = old
      for i in range(n):
        for e in range(NUM_EDGES):
          st = states[tag][i][e]
          if st is not None:
            new = jax.tree_util.tree_map(lambda a, b: a.at[i, e].set(b), new, st)
      restacked[j] = new
  return h, probe, tapped, tuple(restacked)


class _DiscreteStage(nn.Module):
  """``N`` cells of one fixed architecture, unrolled, with only the chosen ops' parameters."""
  C: int
  N: int
  bn: str
  affine: bool
  conv_bias: bool
  weight_init: str
  gates: bool
  relu_probe: Optional[Callable]
  arch: tuple
  stage: int = 0
  tap: Optional[Callable] = None
  block_input: Optional[Callable] = None

  @nn.compact
  def __call__(self, h):
    for i in range(self.N):
      blk = block_index(self.stage, i, self.N)
      if self.block_input is not None:
        h = self.block_input(h, blk)
      nodes = [h]
      for e, (to, frm) in enumerate(EDGES):
        op = self.arch[e]
        sites, bnv = {}, None
        for k, ks, tag in CONV_SITES:
          if k != op:
            sites[tag] = dict(state=None)
            continue
          kern, b, g = L.ConvKernel(self.C, self.C, ks, self.conv_bias,
                                    weight_init=self.weight_init,
                                    gate_batch=h.shape[0] if self.gates else 0,
                                    name=f"cell_{i}_edge_{e}_conv{tag}")()
          scale = bn_bias = state = None
          if self.bn != "none":
            bnv = L.BNVars(self.C, self.affine, name=f"cell_{i}_edge_{e}_bn{tag}")
            scale, bn_bias, state = bnv()
          sites[tag] = dict(kernel=kern, bias=b, gate=g, scale=scale, bn_bias=bn_bias,
                            state=state)
        track = bnv is not None and self.bn == "batch" and bnv.tracking()
        if len(nodes) <= to:
          nodes.append(None)
        tap_fn = None if self.tap is None else (
            lambda site, v, e=e: self.tap(site, v, blk, e))
        y, states, probe, tapped = edge_forward(nodes[frm], op, sites, self.bn, track,
                                                self.relu_probe, tap_fn)
        nodes[to] = y if nodes[to] is None else nodes[to] + y
        if bnv is not None:
          bnv.write(states[0] if op == CONV1 else states[1])
        if op in (CONV1, CONV3):
          _sow_probe(self, probe)
        _sow_probe(self, tapped, "tap")
      h = nodes[3]
      if self.tap is not None:
        _sow_probe(self, self.tap("cell", h, blk, 0), "tap")
    return h


class _Reduction(nn.Module):
  """ResNet basic block, stride 2: ReLU-Conv3x3(s2)-BN -> ReLU-Conv3x3-BN, plus AvgPool2x2-Conv1x1."""
  C_in: int
  C_out: int
  bn: str
  weight_init: str
  gates: bool
  relu_probe: Optional[Callable]
  block: int = 0
  tap: Optional[Callable] = None
  block_input: Optional[Callable] = None

  @nn.compact
  def __call__(self, x):
    gb = x.shape[0] if self.gates else 0
    if self.block_input is not None:
      x = self.block_input(x, self.block)
    record, total = _recorder(
        None if self.tap is None else (lambda site, v, part=0: self.tap(site, v, self.block, part)))
    h = x
    for part, (tag, cin, stride) in enumerate((("a", self.C_in, 2), ("b", self.C_out, 1))):
      kern, _, g = L.ConvKernel(cin, self.C_out, 3, weight_init=self.weight_init, gate_batch=gb,
                                name="conv_" + tag)()
      bnv = L.BNVars(self.C_out, name="bn_" + tag) if self.bn != "none" else None
      scale, bn_bias, state = bnv() if bnv is not None else (None, None, None)
      if self.relu_probe is not None:
        _sow_probe(self, self.relu_probe(h))
      track = bnv is not None and self.bn == "batch" and bnv.tracking()
      h, st = relu_conv_bn(h, kern, None, g, scale, bn_bias,
                           state if (track or self.bn == "running") else None, self.bn,
                           stride=stride, padding=1,
                           tap=None if record is None else (
                               lambda site, v, part=part: record(site, v, part)))
      if bnv is not None:
        bnv.write(st)
    kern, _, g = L.ConvKernel(self.C_in, self.C_out, 1, weight_init=self.weight_init,
                              gate_batch=gb, name="conv_shortcut")()
    p = L.avg_pool_2x2(x)
    r = L.conv2d(p, kern)
    if g is not None:
      r = r * g[:, None, None, :].astype(r.dtype)
    out = h + r
    if record is not None:
      record("shortcut_pool", p)
      record("shortcut", r)
      record("reduction", out)
      _sow_probe(self, total(None), "tap")
    return out


def _bn_layer(module: nn.Module, h, features: int, name: str):
  bnv = L.BNVars(features, name=name)
  scale, bias, state = bnv()
  track = module.bn == "batch" and bnv.tracking()
  h, st = L.batch_norm(h, scale, bias, state if (track or module.bn == "running") else None,
                       module.bn)
  bnv.write(st)
  return h


class NB201Net(nn.Module):
  """The NAS-Bench-201 network; call as ``apply(variables, x, arch)``.

  Attributes:
    C: channels of the first stage (stages have C, 2C, 4C).
    N: cells per stage.
    num_classes: classifier outputs.
    bn: ``'batch'`` (PyTorch train mode: batch statistics, eps 1e-5, biased variance; running
      averages are updated when ``batch_stats`` is mutable), ``'running'`` (stored statistics,
      eval mode) or ``'none'``. Applies to the stem, the cells and the head.
    reduction_bn: BN mode of the reduction blocks, default ``bn``. The zero-cost-nas variant used by
      synflow removes BN everywhere but in the reductions (``bn='none', reduction_bn='batch'``).
    cell_bn_affine: cell BNs carry scale/bias (True in the benchmark; False in FreeDARTS' supernet
      and the zero-cost-nas variant).
    cell_conv_bias: cell convs carry a bias (the zero-cost-nas variant, where bias = not affine).
    weight_init: ``'torch'`` (PyTorch default) or ``'kaiming_normal'``.
    fixed_arch: 6 op indices for the discrete build (only the chosen ops' parameters); then call
      with ``arch=None``.
    gates: adds a ``gates`` collection: a multiplicative gate of ones, shape ``(B, C_out)``, on every
      conv and dense output (named like the layer, leaf ``gate``). d loss / d gate[b, c] is the sum
      over space of activation * gradient (the fisher proxy).
    relu_probe: ``fn(relu_input) -> array``; its values summed over every ReLU of the network (with
      multiplicity: a node feeding two convs has two ReLUs) are sown as ``relu_probe`` in the
      ``intermediates`` collection (NASWOT / TE-NAS kernels); add them with
      :func:`jaxnas.spaces.sum_probes`.
    tap: ``fn(site, x, block, part) -> tree`` called on named tensors of the forward pass; its
      values (one tree structure for every call), summed over every tensor the architecture
      computes, are sown as ``tap`` in ``intermediates`` (add them with
      ``sum_probes(intermediates, 'tap')``). ``site`` (a string of :data:`TAP_SITES`) names the
      tensor: ``'stem'`` (stem output, block 0), ``'cell'`` and ``'reduction'`` (block outputs);
      inside a cell edge (``part`` = edge index 0-5) the op output of ``'none'``, ``'skip'``,
      ``'pool'``, or for a conv op its ``'relu'`` output and ``'conv'`` output (before BN); in a
      reduction block its two ``'relu'`` / ``'conv'`` pairs (``part`` 0 for conv_a, 1 for conv_b),
      ``'shortcut_pool'`` (2x2 average pool) and ``'shortcut'`` (the shortcut conv output); the
      head's ``'head_bn'`` (BN output; absent with ``bn='none'``) and ``'head_relu'`` (ReLU
      output). ``block`` is the :func:`block_index` of the enclosing block (the head: the last
      block's index + 1). ``block`` and ``part`` are int32 scalars, traced inside the cell scan.
      In a mixture supernet (``arch`` weights) every op of non-zero weight is tapped once. A tap
      may declare ``tap.sites`` (a collection of site names): it promises to return zeros for the
      others, which the unrolled build then does not call it on (AZ-NAS reads block outputs only).
    block_input: ``fn(h, block) -> h`` applied to the input of every cell and reduction block
      (``block`` >= 1, traced inside the cell scan); e.g. ``stop_gradient(h) + delta`` to take
      each block's input gradient separately (AZ-NAS trainability).
    unrolled: with a *concrete* ``arch`` of op indices (numpy, or a jax array outside tracing),
      run the shared parameter layout as the discrete network: Python loops over cells and
      edges, only the chosen ops, each ReLU-Conv-BN / pool a compiled block shared by all
      architectures (the ``'eager'`` executor of :mod:`jaxnas.engine.scoring`). Same values as
      the scanned build. A traced ``arch`` or mixture weights run the scanned build as usual.
      Inside ``jit``, a concrete ``arch`` makes one program per architecture.

  Inputs: ``x`` ``(B, H, W, 3)`` NHWC with H, W multiples of 4, and ``arch``: op indices ``(6,)``
  (int) or mixture weights ``(6, 5)`` (float; each edge outputs ``sum_k w_k op_k(x)``, a DARTS-style
  supernet). Output: logits ``(B, num_classes)``. Also sows ``features`` (the head's ReLU output
  before pooling, ``(B, H/4, W/4, 4C)``) into ``intermediates`` when that collection is mutable.
  """
  C: int = 16
  N: int = 5
  num_classes: int = 10
  bn: str = "batch"
  reduction_bn: Optional[str] = None
  cell_bn_affine: bool = True
  cell_conv_bias: bool = False
  weight_init: str = "torch"
  fixed_arch: Optional[tuple] = None
  gates: bool = False
  relu_probe: Optional[Callable] = None
  tap: Optional[Callable] = None
  block_input: Optional[Callable] = None
  unrolled: bool = False

  @nn.compact
  def __call__(self, x, arch=None):
    L.check_bn_mode(self.bn)
    rbn = L.check_bn_mode(self.reduction_bn or self.bn)
    check_input(x)
    if self.fixed_arch is None:
      if arch is None:
        raise JaxnasInputError("NB201Net needs an architecture: pass arch, or set fixed_arch")
      unroll = self.unrolled and is_concrete_ops(arch)
      arch = np.asarray(arch, np.int32) if unroll else jnp.asarray(arch)
      if arch.shape not in ((NUM_EDGES,), (NUM_EDGES, NUM_OPS)):
        raise JaxnasInputError(
            f"NB201 arch must have shape (6,) op indices or (6, 5) weights, got {arch.shape}")
    elif arch is not None:
      raise JaxnasInputError("NB201Net with fixed_arch takes no arch argument")
    else:
      unroll = False
    if self.unrolled and self.fixed_arch is not None:
      raise JaxnasInputError("NB201Net: unrolled=True applies to the shared build; fixed_arch is "
                             "already the discrete network")
    gb = x.shape[0] if self.gates else 0

    kern, _, g = L.ConvKernel(x.shape[-1], self.C, 3, weight_init=self.weight_init,
                              gate_batch=gb, name="conv_stem")()
    h = L.conv2d(x, kern, padding=1)
    if g is not None:
      h = h * g[:, None, None, :].astype(h.dtype)
    if self.bn != "none":
      h = _bn_layer(self, h, self.C, "bn_stem")
    tap = self.tap
    if tap is not None:
      _sow_probe(self, tap("stem", h, 0, 0), "tap")

    c = self.C
    hooks = dict(tap=tap, block_input=self.block_input)
    common = dict(C=0, N=self.N, bn=self.bn, affine=self.cell_bn_affine,
                  conv_bias=self.cell_conv_bias, weight_init=self.weight_init, gates=self.gates,
                  relu_probe=self.relu_probe, **hooks)
    for stage in range(3):
      if stage > 0:
        h = _Reduction(c, 2 * c, rbn, self.weight_init, self.gates, self.relu_probe,
                       block=block_index(stage, None, self.N), **hooks,
                       name=f"reduction_{stage}")(h)
        c *= 2
      common.update(C=c, stage=stage)
      if self.fixed_arch is None:
        h = _Stage(**common, unrolled=unroll, name=f"cells_{stage}")(h, arch)
      else:
        h = _DiscreteStage(**common, arch=tuple(int(a) for a in self.fixed_arch),
                           name=f"cells_{stage}")(h)

    head = num_blocks(self.N)
    if self.bn != "none":
      h = _bn_layer(self, h, c, "bn_head")
      if tap is not None:
        _sow_probe(self, tap("head_bn", h, head, 0), "tap")
    if self.relu_probe is not None:
      _sow_probe(self, self.relu_probe(h))
    h = jax.nn.relu(h)
    if tap is not None:
      _sow_probe(self, tap("head_relu", h, head, 0), "tap")
    self.sow("intermediates", "features", h)
    return L.Dense(self.num_classes, weight_init=self.weight_init, gates=self.gates,
                   name="classifier")(L.global_avg_pool(h))


def check_input(x):
  """Raises :class:`JaxnasInputError` unless ``x`` is a non-empty NHWC batch with H, W % 4 == 0."""
  if x.ndim != 4:
    raise JaxnasInputError(f"NB201 input must be NHWC (B, H, W, C), got shape {x.shape}")
  if x.shape[0] < 1:
    raise JaxnasInputError("NB201 input batch is empty (batch size 0)")
  if x.shape[1] % 4 or x.shape[2] % 4 or x.shape[1] < 4 or x.shape[2] < 4:
    raise JaxnasInputError(
        f"NB201 input height and width must be positive multiples of 4, got {x.shape[1:3]}")
