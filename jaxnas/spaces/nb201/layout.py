"""Parameter layouts of the NAS-Bench-201 network (:mod:`.net`): per-layer masks of the layers an
architecture uses in the shared tree (:func:`active_mask`), and the map of the shared tree onto the
discrete network of one architecture (:func:`discrete_params`)."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces.nb201.net import CONV1, CONV3, NUM_EDGES


def _names(path):
  return [str(getattr(k, "key", getattr(k, "name", k))) for k in path]


def _cell_site(path) -> Optional[str]:
  """'1x1' / '3x3' for a stacked cell-edge variable, else None."""
  names = _names(path)
  if not any(n.startswith("cells_") for n in names):
    return None
  return "1x1" if any(n.endswith("1x1") for n in names) else "3x3"


def active_mask(tree, arch):
  """Per-layer 0/1 masks over a shared variable tree: 1 where the layer belongs to ``arch``.

  Stacked cell leaves ``(N, 6, ...)`` get a mask of shape ``(N, 6)`` (edge ``e`` of every cell is
  active when ``arch[e]`` is that conv); every other leaf gets the scalar 1. ``arch`` may be traced.
  Broadcast onto the leaves with :func:`jaxnas.spaces.params.broadcast_to_leaves`.
  """
  arch = jnp.asarray(arch)

  def leaf(path, x):
    site = _cell_site(path)
    if site is None:
      return jnp.float32(1.0)
    op = CONV1 if site == "1x1" else CONV3
    return jnp.broadcast_to((arch == op).astype(jnp.float32), x.shape[:2])

  return jax.tree_util.tree_map_with_path(leaf, tree)


def discrete_params(tree, arch, N: Optional[int] = None):
  """Maps a shared variable tree (any collection) onto the discrete network of ``arch``."""
  arch = [int(a) for a in np.asarray(arch)]
  out = {}
  for k, v in tree.items():
    if not str(k).startswith("cells_"):
      out[k] = v
      continue
    stage = {}
    for mod, leaves in v.items():
      tag = "1x1" if mod.endswith("1x1") else "3x3"
      op = CONV1 if tag == "1x1" else CONV3
      n = jax.tree_util.tree_leaves(leaves)[0].shape[0]
      for i in range(n):
        for e in range(NUM_EDGES):
          if arch[e] == op:
            prefix = mod[:-3]  # 'conv' / 'bn'
            stage[f"cell_{i}_edge_{e}_{prefix}{tag}"] = jax.tree_util.tree_map(
                lambda a: a[i, e], leaves)
    if stage:
      out[k] = stage
  return out
