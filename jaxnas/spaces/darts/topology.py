"""DARTS cell topology (Liu et al., ICLR 2019; methods-spec §1.2): the op table, the cell's edges,
the macro layout, and the conversion of architectures to per-edge ops or mixture weights.

Cells have two input nodes (the outputs of the two previous cells, preprocessed by ReLU-Conv1x1-BN,
or by FactorizedReduce when the previous cell was a reduction), 4 intermediate nodes each fed by
every earlier node (14 edges) and output the concatenation of the 4 intermediate nodes (4C
channels). The macro network is: stem Conv3x3 to 3C + BN; ``L`` cells with reduction cells (stride 2
on the edges from the input nodes, C doubled) at layers ``L//3`` and ``2L//3``; global average pool
and a linear classifier (no final BN-ReLU).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnas.errors import JaxnasInputError

OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
       "dil_conv_3x3", "dil_conv_5x5")
NONE, MAX_POOL, AVG_POOL, SKIP, SEP3, SEP5, DIL3, DIL5 = range(8)
NUM_OPS = len(OPS)
NUM_NODES = 4
#: (to_node, from_node) of each edge, nodes 0, 1 the cell inputs and 2..5 the intermediate nodes,
#: in DARTS' alpha-row order: node 2 <- 0, 1; node 3 <- 0, 1, 2; node 4 <- 0..3; node 5 <- 0..4.
EDGES = tuple((i + 2, j) for i in range(NUM_NODES) for j in range(i + 2))
NUM_EDGES = len(EDGES)
#: first edge of each intermediate node
NODE_OFFSET = (0, 2, 5, 9)
#: edges whose source is a cell input (stride 2 in reduction cells), and the others
INPUT_EDGES = tuple(e for e, (_, f) in enumerate(EDGES) if f < 2)
INNER_EDGES = tuple(e for e, (_, f) in enumerate(EDGES) if f >= 2)
CONV_IMPLS = ("auto", "shifted", "lax")
#: parameter-holding sub-sites of every op (the op's key in an edge's parameter tree)
OP_KEYS = {MAX_POOL: "maxpool", AVG_POOL: "avgpool", SKIP: "skip", SEP3: "sep3", SEP5: "sep5",
           DIL3: "dil3", DIL5: "dil5"}


def reduction_layers(L_: int) -> tuple:
  """Indices of the reduction cells: ``L//3`` and ``2L//3`` (DARTS)."""
  return tuple(sorted({L_ // 3, 2 * L_ // 3}))


def cell_plan(C: int, L_: int, stem_multiplier: int = 3):
  """Per cell ``(C_pp, C_p, C_cell, reduction, reduction_prev)`` and the final channel count."""
  red = reduction_layers(L_)
  c_pp = c_p = stem_multiplier * C
  c_cur, red_prev, plan = C, False, []
  for i in range(L_):
    r = i in red
    if r:
      c_cur *= 2
    plan.append((c_pp, c_p, c_cur, r, red_prev))
    red_prev = r
    c_pp, c_p = c_p, NUM_NODES * c_cur
  return plan, c_p


def edge_ops(arch):
  """Discrete architecture ``(..., 2, 8, 2)`` (``[cell type][slot] = (input node, op)``) ->
  op index per edge ``(..., 2, 14)``, 0 (``none``) on edges the genotype does not keep.

  Slot ``s`` feeds intermediate node ``s // 2``; its edge is ``NODE_OFFSET[s // 2] + input``.
  Traceable (``arch`` may be a tracer).
  """
  arch = jnp.asarray(arch)
  edge = jnp.asarray(NODE_OFFSET, jnp.int32)[jnp.arange(8) // 2] + arch[..., 0]
  onehot = jax.nn.one_hot(edge, NUM_EDGES, dtype=jnp.int32)          # (..., 2, 8, 14)
  return jnp.sum(onehot * arch[..., 1:2], axis=-2).astype(jnp.int32)


def to_weights(arch, dtype=jnp.float32):
  """Discrete architecture ``(..., 2, 8, 2)`` -> mixture weights ``(..., 2, 14, 8)``: one-hot on
  the kept edges' ops, all-zero rows on the other edges (their output is exactly zero)."""
  arch = jnp.asarray(arch)
  edge = jnp.asarray(NODE_OFFSET, jnp.int32)[jnp.arange(8) // 2] + arch[..., 0]
  e = jax.nn.one_hot(edge, NUM_EDGES, dtype=dtype)                    # (..., 2, 8, 14)
  o = jax.nn.one_hot(arch[..., 1], NUM_OPS, dtype=dtype)              # (..., 2, 8, 8)
  return jnp.einsum("...se,...so->...eo", e, o)


def _arch_to_edges(arch):
  """Supernet ``arch`` input -> ``(2, 14)`` int ops or ``(2, 14, 8)`` weights."""
  arch = jnp.asarray(arch)
  if arch.shape == (2, NUM_EDGES, NUM_OPS):
    if not jnp.issubdtype(arch.dtype, jnp.floating):
      arch = arch.astype(jnp.float32)
    return arch
  if arch.shape == (2, 8, 2) and jnp.issubdtype(arch.dtype, jnp.integer):
    return edge_ops(arch)
  if arch.shape == (2, NUM_EDGES) and jnp.issubdtype(arch.dtype, jnp.integer):
    return arch.astype(jnp.int32)
  raise JaxnasInputError(
      f"DARTS supernet arch must be mixture weights (2, 14, 8), a discrete architecture (2, 8, 2) "
      f"int or per-edge op indices (2, 14) int; got shape {arch.shape} dtype {arch.dtype}")
