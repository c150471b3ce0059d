"""The DARTS search supernet as a Flax module (``model_search.Network`` of DARTS).

:class:`DartsSupernet` (search default C=16, L=8): every edge holds all 8 operations. The
architecture is an *input*: mixture weights ``(2, 14, 8)`` (normal, reduce) with edge output
``sum_k w_k op_k(x)`` (FreeDARTS passes the raw alpha, DARTS its softmax), or a discrete
architecture (op indices per edge, ``lax.switch``: under ``lax.map`` only the chosen op runs). The
14 edges of a cell share one stacked parameter tree ``(14, ...)`` and run in ``lax.scan`` (one scan
over the 14 edges in a normal cell; in a reduction cell one over the 8 stride-2 edges from the
inputs and one over the 6 internal edges), so each cell compiles one or two edge bodies. With
``unrolled=True`` and a *concrete* discrete architecture the cells run as the discrete network over
the same variables instead (:func:`unrolled_cell`: Python loops over the kept edges, each op a
compiled block shared by every architecture): the engine's ``'eager'`` executor, which ``'auto'``
picks on DARTS only for the proxies of the ReLU probe (nwot, swap, tenas_regions, ensemble),
which only the unrolled build has (for the others it measured no faster than ``map``, see
BENCHMARKS.md). Search
defaults: cell BNs without affine parameters and an extra BN(affine=False) after pooling ops
(``affine=False, pool_bn=True``). It shares the operations and the parameter naming with
:class:`~jaxnas.spaces.darts.evalnet.DartsEvalNet`.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasInputError
from jaxnas.spaces.darts.blocks import (_check_config, _concat_nodes, _drop_states, _head,
                                        _preprocess, _stem, _tracking, check_input, declare_op)
from jaxnas.spaces.darts.operations import apply_op, mixed_edge
from jaxnas.spaces.darts.topology import (EDGES, INNER_EDGES, INPUT_EDGES, NODE_OFFSET, NONE,
                                          NUM_EDGES, NUM_NODES, NUM_OPS, OP_KEYS, SKIP,
                                          _arch_to_edges, cell_plan)

#: one DARTS operation on one edge's parameters, compiled once per (op, stride, BN mode, shapes)
#: and shared by every edge, cell and architecture of the unrolled build
_op_block = jax.jit(apply_op, static_argnums=(0, 3, 4, 5))


def _apply_op_relus(k, x, p, stride, mode, impl):
  relus = []
  y, st = apply_op(k, x, p, stride, mode, impl, relus)
  return y, st, relus


#: :data:`_op_block` that also returns the input of each of the op's ReLUs (the ReLU probe)
_op_relus_block = jax.jit(_apply_op_relus, static_argnums=(0, 3, 4, 5))


def _take(tree, idx):
  """The rows ``idx`` (an int or a tuple of edges) of every stacked leaf of ``tree``."""
  return jax.tree_util.tree_map(lambda a: a[np.asarray(idx)], tree)


def unrolled_cell(s0, s1, ops, params, reduction: bool, mode: str, impl: str, track: bool,
                  relus=None):
  """One cell of a *concrete* architecture as its discrete network: for each intermediate node, the
  sum of its kept edges (``ops[e] != none``), each op run on its own slice of the stacked
  ``(14, ...)`` variables (the skip site of a reduction cell is stacked over the 8 input edges).
  Returns ``(output, states)``: with ``track``, the stacked BN states with the kept edges' rows
  replaced by their new running statistics (the other edges keep theirs), else None. Values
  equal the scanned supernet's on the same variables (:class:`_SuperCell`). ``relus``: a list
  to which the input of every ReLU of the kept ops is appended (sep_conv 2, dil_conv 1, a
  stride-2 skip's FactorizedReduce 1)."""
  nodes = [s0, s1]
  b, h, w, c = s1.shape
  shape = (b, h // 2, w // 2, c) if reduction else s1.shape
  states = None
  if track:
    states = {key: {n: v["state"] for n, v in site.items() if n.startswith("bn")}
              for key, site in params.items()}
  for n in range(NUM_NODES):
    acc = None
    for j in range(n + 2):
      e, op = NODE_OFFSET[n] + j, int(ops[NODE_OFFSET[n] + j])
      if op == NONE:
        continue
      stride = 2 if (reduction and j < 2) else 1
      key = OP_KEYS[op]
      uses = key in params and not (op == SKIP and stride == 1)
      row = INPUT_EDGES.index(e) if (uses and key == "skip") else e
      p = {key: _take(params[key], row)} if uses else {}
      if relus is None:
        y, st = _op_block(op, nodes[j], p, stride, mode, impl)
      else:
        y, st, r = _op_relus_block(op, nodes[j], p, stride, mode, impl)
        relus.extend(r)
      acc = y if acc is None else acc + y
      if track and uses:
        for name, new in st.get(key, {}).items():
          states[key][name] = jax.tree_util.tree_map(lambda a, v: a.at[row].set(v),
                                                     states[key][name], new)
    nodes.append(jnp.zeros(shape, s1.dtype) if acc is None else acc)
  return jnp.concatenate(nodes[2:], axis=-1), states

class _SuperCell(nn.Module):
  """One supernet cell; ``ops`` ``(14,)`` int or ``(14, 8)`` weights. ``relu_probe`` (unrolled
  only): its values on the input of every ReLU of the cell (preprocessing and kept ops), summed,
  are sown as ``relu_probe`` into ``intermediates``."""
  C: int
  C_pp: int
  C_p: int
  reduction: bool
  reduction_prev: bool
  bn: str
  affine: bool
  pool_bn: bool
  weight_init: str
  conv_impl: str
  unrolled: bool = False
  relu_probe: Optional[Callable] = None
  gates: bool = False

  @nn.compact
  def __call__(self, s0, s1, ops):
    mode, C = self.bn, self.C
    relus = [] if self.relu_probe is not None else None
    gb = s1.shape[0] if self.gates else 0
    s0 = _preprocess(self, s0, "pre0", self.C_pp, C, self.reduction_prev, self.affine, mode,
                     self.weight_init, relus, gb)
    s1 = _preprocess(self, s1, "pre1", self.C_p, C, False, self.affine, mode, self.weight_init,
                     relus, gb)
    params, bnvs = {}, {}
    for k in range(NUM_OPS):
      stride = 2 if (self.reduction and k == SKIP) else 1
      stack = (len(INPUT_EDGES),) if (self.reduction and k == SKIP) else (NUM_EDGES,)
      p, b = declare_op(self, k, C, stride, self.affine, self.pool_bn, mode, self.weight_init,
                        stack, gb)
      if p is not None:
        params[OP_KEYS[k]] = p
        bnvs.update(b)
    track = mode == "batch" and any(_tracking(b) for b in bnvs.values())
    if not (track or mode == "running"):
      params = _drop_states(params)
    impl = self.conv_impl

    if relus is not None and not self.unrolled:
      raise JaxnasInputError("the DARTS supernet's relu_probe needs the unrolled build")
    if self.unrolled:
      out, states = unrolled_cell(s0, s1, ops, params, self.reduction, mode, impl, track, relus)
      if relus:
        probes = [self.relu_probe(h) for h in relus]
        self.sow("intermediates", "relu_probe",
                 jax.tree_util.tree_map(lambda *v: sum(v[1:], v[0]), *probes),
                 init_fn=lambda: None, reduce_fn=lambda _, v: v)
    elif not self.reduction:
      nodes = jnp.zeros((6,) + s1.shape, s1.dtype).at[0].set(s0).at[1].set(s1)
      frm = np.array([f for _, f in EDGES], np.int32)
      to = np.array([t for t, _ in EDGES], np.int32)

      def edge(nodes, xs):
        t, f, op, p = xs
        y, st = mixed_edge(nodes[f], op, p, 1, mode, impl)
        return nodes.at[t].add(y), st

      # rematerialise edges in reverse mode (every op of the edge would otherwise be stored)
      nodes, states = jax.lax.scan(jax.checkpoint(edge), nodes, (to, frm, ops, params))
      out = _concat_nodes(nodes[2:])
    else:
      p_in = {key: (v if key == "skip" else _take(v, INPUT_EDGES)) for key, v in params.items()}
      p_mid = {key: _take(v, INNER_EDGES) for key, v in params.items() if key != "skip"}
      inputs = jnp.stack([s0, s1])
      b, h, w, c = s1.shape
      acc = jnp.zeros((NUM_NODES, b, h // 2, w // 2, c), s1.dtype)
      to_in = np.array([EDGES[e][0] - 2 for e in INPUT_EDGES], np.int32)
      frm_in = np.array([EDGES[e][1] for e in INPUT_EDGES], np.int32)

      def in_edge(acc, xs):
        t, f, op, p = xs
        y, st = mixed_edge(inputs[f], op, p, 2, mode, impl)
        return acc.at[t].add(y), st

      acc, st_in = jax.lax.scan(jax.checkpoint(in_edge), acc,
                                (to_in, frm_in, ops[np.asarray(INPUT_EDGES)], p_in))
      to_mid = np.array([EDGES[e][0] - 2 for e in INNER_EDGES], np.int32)
      frm_mid = np.array([EDGES[e][1] - 2 for e in INNER_EDGES], np.int32)

      def mid_edge(acc, xs):
        t, f, op, p = xs
        y, st = mixed_edge(acc[f], op, p, 1, mode, impl)
        return acc.at[t].add(y), st

      acc, st_mid = jax.lax.scan(jax.checkpoint(mid_edge), acc,
                                 (to_mid, frm_mid, ops[np.asarray(INNER_EDGES)], p_mid))
      out = _concat_nodes(acc)
      states = _merge_reduction_states(st_in, st_mid)
    if track:
      for (key, name), bnv in bnvs.items():
        bnv.write(states[key][name])
    return out


def _merge_reduction_states(st_in, st_mid):
  """Stacked BN states of the 8 input edges and 6 inner edges -> the 14-edge stacks (the skip
  site's states stay stacked over the 8 input edges)."""
  inv = np.argsort(np.array(INPUT_EDGES + INNER_EDGES))
  out = {}
  for key, site in st_in.items():
    if key == "skip":
      out[key] = site
      continue
    out[key] = jax.tree_util.tree_map(
        lambda a, b: jnp.concatenate([a, b])[inv], site, st_mid[key])
  return out


class DartsSupernet(nn.Module):
  """The DARTS search supernet; call as ``apply(variables, x, arch)``.

  Attributes:
    C: channels of the first cells (stem outputs ``stem_multiplier * C``).
    L: number of cells; reduction cells at ``L//3`` and ``2L//3``.
    num_classes: classifier outputs.
    bn: ``'batch'`` (PyTorch train mode; running statistics updated when ``batch_stats`` is
      mutable), ``'running'`` (stored statistics) or ``'none'`` (every BN removed).
    affine: cell BNs (preprocessing and operations) carry scale/bias. DARTS' search network: False
      (the stem BN is always affine).
    pool_bn: an extra BN(affine=False) after each pooling op (DARTS' search network: True).
    stem_multiplier: the stem outputs ``stem_multiplier * C`` channels (3).
    weight_init: ``'torch'`` (PyTorch default) or ``'kaiming_normal'``.
    conv_impl: depthwise convolution implementation, see :func:`depthwise_conv`.
    unrolled: with a *concrete* discrete architecture (numpy, or a jax array outside tracing), run
      the discrete network over these variables (:func:`unrolled_cell`); mixture weights and
      traced architectures take the scanned build.
    relu_probe: ``fn(relu_input) -> array`` (NASWOT / SWAP / TE-NAS kernels), its values summed
      over every ReLU of the discrete network and sown as ``relu_probe`` into ``intermediates``,
      one sum per cell under ``cell_<i>`` (add them with :func:`jaxnas.spaces.sum_probes`), as
      NASLib hooks every ``nn.ReLU``. The DARTS ReLUs all head an op: each cell's two
      preprocessing ops (ReLU-Conv1x1-BN or FactorizedReduce), and per kept edge sep_conv's two,
      dil_conv's one and a stride-2 skip_connect's FactorizedReduce one (pools, identity and
      ``none`` have none; the stem is Conv-BN and the head pool-Linear, without ReLU). Only the
      unrolled build has it: the scanned supernet runs ops the genotype lacks (all of them under
      mixture weights or ``vmap``), so a probe there is refused by name (score with
      ``mode='eager'``, which ``'auto'`` picks for these proxies).
    gates: a multiplicative gate of ones ``stack + (B, C_out)`` on the output of every conv (before
      its BN) and of the classifier, declared beside each kernel as ``gates/<layer>/gate``
      (stacked over the edges like the kernel), as NASLib's fisher hooks every ``nn.Conv2d`` and
      ``nn.Linear``: ``d loss / d gate[b, c]`` is the sum over space of activation * gradient (the
      fisher proxy). In both builds: with a discrete architecture the ops it lacks (the other ops
      of an edge, the edges it does not keep) do not run (``lax.switch``, the unrolled loop), so
      their gates get zero gradient; under mixture weights every op runs and has its gate.

  Inputs: ``x`` ``(B, H, W, 3)`` NHWC with H, W multiples of 4; ``arch``: mixture weights
  ``(2, 14, 8)`` float (rows: normal / reduce cell edges in :data:`EDGES` order, columns
  :data:`OPS`), a discrete architecture ``(2, 8, 2)`` int (see :mod:`jaxnas.spaces.darts`) or per-edge
  op indices ``(2, 14)`` int (0 = no edge). Output: logits ``(B, num_classes)``.

  With ``affine=True, pool_bn=False`` and a discrete architecture (or its one-hot
  :func:`to_weights`), the output equals :class:`DartsEvalNet`'s on :func:`discrete_params`.
  """
  C: int = 16
  L: int = 8
  num_classes: int = 10
  bn: str = "batch"
  affine: bool = False
  pool_bn: bool = True
  stem_multiplier: int = 3
  weight_init: str = "torch"
  conv_impl: str = "auto"
  unrolled: bool = False
  relu_probe: Optional[Callable] = None
  gates: bool = False

  @nn.compact
  def __call__(self, x, arch):
    _check_config(self.C, self.L, self.num_classes, self.bn, self.conv_impl, self.stem_multiplier)
    check_input(x)
    if arch is None:
      raise JaxnasInputError("DartsSupernet needs an architecture argument (weights or genotype)")
    concrete = self.unrolled and not isinstance(arch, jax.core.Tracer)
    # a concrete genotype stays concrete inside an outer jit (its edge table computed now)
    with jax.ensure_compile_time_eval() if concrete else contextlib.nullcontext():
      ops = _arch_to_edges(arch)
    unroll = concrete and jnp.issubdtype(ops.dtype, jnp.integer)
    if unroll:
      ops = np.asarray(ops)
    if self.relu_probe is not None and not unroll:
      raise JaxnasInputError(
          "DARTS' relu_probe (nwot, swap, tenas_regions) runs on the unrolled network of a "
          "concrete genotype: score with mode='eager' (the scanned supernet computes ops the "
          "genotype does not have, and every op under mixture weights)")
    h = _stem(self, x, self.stem_multiplier * self.C, self.bn, self.weight_init, self.gates)
    s0 = s1 = h
    plan, _ = cell_plan(self.C, self.L, self.stem_multiplier)
    for i, (c_pp, c_p, c, red, red_prev) in enumerate(plan):
      cell = _SuperCell(c, c_pp, c_p, red, red_prev, self.bn, self.affine, self.pool_bn,
                        self.weight_init, self.conv_impl, unroll, self.relu_probe, self.gates,
                        name=f"cell_{i}")
      s0, s1 = s1, cell(s0, s1, ops[1 if red else 0])
    return _head(s1, self.num_classes, self.weight_init, self.gates)
