"""Parameter layouts of the DARTS supernet: per-layer masks of the layers an architecture uses
(:func:`active_mask`), and the map of a supernet tree onto the evaluation network of one genotype
(:func:`discrete_params`)."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces.darts.topology import (INPUT_EDGES, NODE_OFFSET, OP_KEYS, SKIP, _arch_to_edges,
                                          reduction_layers)

def _names(path):
  return [str(getattr(k, "key", getattr(k, "name", k))) for k in path]


def _site_op(name: str) -> Optional[int]:
  """Op index owning a stacked edge module name (``conv_sep3_dw1`` -> SEP3), else None."""
  for k, key in OP_KEYS.items():
    if name in (f"bn_{key}", f"conv_{key}_a", f"conv_{key}_b") or name.startswith(
        (f"conv_{key}_", f"bn_{key}_")):
      return k
  return None


def _edge_axis_ops(ops_cell, op: int, skip_site: bool):
  """0/1 per stacked edge: the edge uses ``op`` (the skip site spans the 8 input edges)."""
  ops_cell = jnp.asarray(ops_cell)
  if skip_site:
    ops_cell = ops_cell[..., np.asarray(INPUT_EDGES)]
  return ops_cell == op


def active_mask(tree, arch):
  """Per-layer 0/1 masks over a supernet variable tree: 1 where the layer belongs to ``arch``.

  Stacked edge leaves ``(14, ...)`` get a mask ``(14,)`` (``(8,)`` for the reduction cells' skip
  sites), 1 on the edges whose kept op owns them; every other leaf (stem, preprocessing, head) gets
  the scalar 1. ``arch``: discrete ``(2, 8, 2)`` / ``(2, 14)`` int, or weights ``(2, 14, 8)``
  (active where the weight is non-zero). ``arch`` may be traced. The cell type of ``cell_<i>`` is
  read from the leaf shapes (reduction cells hold a skip site).
  """
  a = _arch_to_edges(arch)
  reductions = _reduction_cells(tree)

  def leaf(path, x):
    names = _names(path)
    cell = next((n for n in names if n.startswith("cell_")), None)
    op = None
    for n in names:
      op = _site_op(n) if op is None else op
    if cell is None or op is None:
      return jnp.float32(1.0)
    typ = 1 if cell in reductions else 0
    skip = op == SKIP
    if a.ndim == 3:
      w = a[typ, :, op]
      w = w[np.asarray(INPUT_EDGES)] if skip else w
      return (w != 0).astype(jnp.float32)
    return _edge_axis_ops(a[typ], op, skip).astype(jnp.float32)

  return jax.tree_util.tree_map_with_path(leaf, tree)


def _reduction_cells(tree) -> set:
  """Names of the reduction cells of a variable tree (those holding a ``conv_skip_a`` site, or
  any collection's tree below a ``cell_<i>`` key whose stacked skip site exists)."""
  out = set()

  def visit(t, cell=None):
    if not hasattr(t, "items"):
      return
    for k, v in t.items():
      k = str(k)
      if k.startswith("cell_"):
        visit(v, k)
      elif cell is not None and k in ("conv_skip_a", "bn_skip"):
        out.add(cell)
      elif hasattr(v, "items"):
        visit(v, cell)

  visit(tree)
  return out


def discrete_params(tree, arch, C: int = 16, L: int = 8, stem_multiplier: int = 3):
  """Maps a supernet variable tree (any collection) onto :class:`DartsEvalNet`'s for ``arch``.

  Supernet leaf ``cell_i/<site>/leaf[e]`` -> ``cell_i/edge_e/<site>/leaf`` for each edge ``e`` the
  genotype keeps with the op owning ``<site>``; the skip site of reduction cells is indexed by the
  position of ``e`` among the input edges. ``C, L`` give the cell types (reduction layers).
  """
  a = np.asarray(arch, np.int64)
  red = set(reduction_layers(L))
  out = {}
  for k, v in tree.items():
    if not str(k).startswith("cell_"):
      out[k] = v
      continue
    i = int(str(k).split("_")[1])
    genes = a[1 if i in red else 0]
    cell = {}
    for mod, leaves in v.items():
      op = _site_op(mod)
      if op is None:
        cell[mod] = leaves
        continue
      for slot in range(8):
        j, o = int(genes[slot, 0]), int(genes[slot, 1])
        if o != op:
          continue
        n = slot // 2
        e = NODE_OFFSET[n] + j
        if op == SKIP and (i not in red or j >= 2):
          continue  # identity: no parameters
        idx = INPUT_EDGES.index(e) if op == SKIP else e
        cell.setdefault(f"edge_{e}", {})[mod] = jax.tree_util.tree_map(lambda t: t[idx], leaves)
    out[k] = cell
  return out
