"""Naming convention for network variables, and masks built on it.

Every search space names its modules so that a parameter's role follows from its path:

* a module whose name starts with ``conv`` holds a convolution: leaves ``kernel`` (HWIO), ``bias``;
* ``classifier`` is the dense head: ``kernel`` (in, out), ``bias``;
* a module whose name starts with ``bn`` holds a BatchNorm: ``scale``, ``bias`` (params) and
  ``mean``, ``var`` (``batch_stats``).

Proxies select parameter subsets with these helpers instead of parsing names themselves
(methods-spec §8.4: zero-cost/ZiCo use conv+dense weights, HNAS conv+dense weights and biases,
TE-NAS every "weight" including BN scale).
"""

from __future__ import annotations

from typing import Iterable

import jax
import jax.numpy as jnp

KINDS = ("conv_kernel", "conv_bias", "dense_kernel", "dense_bias", "bn_scale", "bn_bias")

#: Subsets used by the papers.
WEIGHTS = ("conv_kernel", "dense_kernel")                       # zero-cost, ZiCo
WEIGHTS_AND_BIASES = WEIGHTS + ("conv_bias", "dense_bias")     # HNAS
TORCH_WEIGHTS = WEIGHTS + ("bn_scale",)                         # TE-NAS: every ``*.weight``


def _key_name(k) -> str:
  return str(getattr(k, "key", getattr(k, "name", k)))


def _role(name: str) -> str:
  """'conv' / 'bn' from a module name such as ``conv_a``, ``bn3x3``, ``cell_0_edge_3_conv1x1``."""
  for tok in reversed(name.split("_")):
    if tok.startswith("conv"):
      return "conv"
    if tok.startswith("bn"):
      return "bn"
  return ""


def kind_of(path) -> str:
  """Role of a parameter from its tree path (a tuple of keys)."""
  names = [_key_name(k) for k in path]
  leaf, parent = names[-1], (names[-2] if len(names) > 1 else "")
  if parent == "classifier":
    return {"kernel": "dense_kernel", "bias": "dense_bias"}.get(leaf, "other")
  role = _role(parent)
  if role == "bn":
    return {"scale": "bn_scale", "bias": "bn_bias"}.get(leaf, "other")
  if role == "conv":
    return {"kernel": "conv_kernel", "bias": "conv_bias"}.get(leaf, "other")
  return "other"


#: Number of trailing axes that make up one layer's tensor, by role; leading axes beyond these
#: index stacked layers (e.g. NB201 cell edges stored as (N, 6, k, k, C, C)).
BASE_NDIM = {"conv_kernel": 4, "conv_bias": 1, "dense_kernel": 2, "dense_bias": 1,
             "bn_scale": 1, "bn_bias": 1}


def per_layer(fn, tree, *masks):
  """``sum over layers of fn(layer_tensor) * masks`` where stacked leaves count as many layers.

  ``fn(x, axes)`` reduces the layer axes ``axes`` of ``x`` (keeping the stacked ones), e.g.
  ``lambda x, ax: jnp.sqrt(jnp.sum(x**2, ax))`` for per-layer Frobenius norms. Masks are per-layer
  (shape = the stacked axes, or scalars), e.g. from ``SearchSpace.active_mask``.
  """
  def leaf(path, x, *ms):
    base = BASE_NDIM.get(kind_of(path), x.ndim)
    axes = tuple(range(x.ndim - base, x.ndim))
    v = fn(x, axes)
    for m in ms:
      v = v * m
    return jnp.sum(v)
  return tree_sum(jax.tree_util.tree_map_with_path(leaf, tree, *masks))


def broadcast_to_leaves(masks, tree):
  """Per-layer masks reshaped to broadcast against their leaves (trailing axes of size 1)."""
  return jax.tree_util.tree_map(
      lambda m, x: jnp.reshape(m, jnp.shape(m) + (1,) * (x.ndim - jnp.ndim(m))), masks, tree)


def kinds(params):
  """Tree of role strings with the structure of ``params``."""
  return jax.tree_util.tree_map_with_path(lambda p, _: kind_of(p), params)


def select(params, which: Iterable[str] = WEIGHTS):
  """Tree of Python bools: True where the parameter's role is in ``which``."""
  which = tuple(which)
  return jax.tree_util.tree_map_with_path(lambda p, _: kind_of(p) in which, params)


def tree_sum(tree) -> jax.Array:
  """Sum of all leaves of a tree of scalars."""
  leaves = jax.tree_util.tree_leaves(tree)
  return sum(leaves[1:], leaves[0]) if leaves else 0.0


def masked_sum(fn, tree, *masks):
  """``sum_leaf fn(leaf) * prod(masks)`` over leaves; masks are trees of bools or 0-d arrays."""
  def leaf(x, *ms):
    v = fn(x)
    for m in ms:
      v = v * m
    return v
  return tree_sum(jax.tree_util.tree_map(leaf, tree, *masks))
