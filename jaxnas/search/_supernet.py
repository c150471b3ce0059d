"""Pieces shared by the supernet-based searches (freedarts/freenas, nasi, tenas).

A supernet is the space's module called with float mixture weights of ``space.alpha_shape`` as
``arch`` (each edge outputs ``sum_k w_k op_k(x)``); ``space.discretize(scores)`` turns per-op scores
into the discrete architecture.
"""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import data
from jaxnas.errors import JaxnasInputError

#: Index of the ``none`` operation (first in both NB201 and DARTS).
NONE = 0


def check_space(space, method: str):
  """Raises :class:`JaxnasInputError` naming ``method``, ``space`` and what it lacks unless
  ``space`` has everything the registered method requires (a method called directly, not through
  :func:`jaxnas.search.search`)."""
  from jaxnas.search import check_supported, get_method
  check_supported(get_method(method), space)


def module(space, *overrides, which: str = "search"):
  """The space's search supernet (``space.supernet_config(which)``: ``'search'``, the papers';
  ``'small'``, for NTK-based searches) updated with each dict of ``overrides`` in turn (a
  method's defaults, then the user's)."""
  cfg = space.supernet_config(which)
  for o in overrides:
    cfg.update(o or {})
  return space.model(**cfg)


@functools.lru_cache(maxsize=32)
def _jit_init(mod):
  return jax.jit(mod.init)


def init_params(mod, key, x, alpha):
  """Parameters of the supernet (the shared build declares every op's parameters)."""
  return _jit_init(mod)(key, x, alpha)["params"]


def freeze(tree):
  """A hashable form of nested dicts/lists (for caching compiled functions by configuration)."""
  if isinstance(tree, dict):
    return tuple(sorted((k, freeze(v)) for k, v in tree.items()))
  if isinstance(tree, (list, tuple)):
    return tuple(freeze(v) for v in tree)
  return tree


def discretize(space, scores, exclude_none: bool = True, mask=None):
  """``space.discretize`` of per-op scores, never choosing ``none`` (when ``exclude_none``) nor an
  op pruned from ``mask`` (0 entries)."""
  s = np.array(scores, np.float64)
  if mask is not None:
    s = np.where(np.asarray(mask) > 0, s, -np.inf)
  if exclude_none:
    s[..., NONE] = -np.inf
  params = inspect.signature(space.discretize).parameters
  if "exclude_none" in params:
    return np.asarray(space.discretize(s, exclude_none=exclude_none))
  return np.asarray(space.discretize(s))


def check_finite(name: str, x, hint: str = ""):
  """Raises ``FloatingPointError`` naming ``name`` when ``x`` holds NaN or inf."""
  a = np.asarray(x)
  if not np.all(np.isfinite(a)):
    raise FloatingPointError(
        f"{name} has {int((~np.isfinite(a)).sum())} non-finite value(s) of {a.size}" +
        (f": {hint}" if hint else ""))
  return a


def seed_of(key) -> int:
  """A non-negative int seed drawn from ``key`` (for :func:`jaxnas.data.minibatch`)."""
  return int(jax.random.randint(key, (), 0, 2**31 - 1))


def minibatch(key, dataset: str, batch_size: int, resolution: int = 32,
              random_labels: bool = False) -> data.Batch:
  """A minibatch drawn with a seed taken from ``key``; real images are average-pooled down to
  ``resolution`` when it is below 32 (tiny test networks)."""
  seed = seed_of(key)
  if dataset in ("synthetic", "gaussian", "uniform", "ones"):
    return data.minibatch(dataset, batch_size, seed=seed, resolution=resolution)
  b = data.minibatch(dataset, batch_size, seed=seed, random_labels=random_labels)
  h = b.x.shape[1]
  if resolution != h:
    if resolution < 1 or h % resolution:
      raise JaxnasInputError(f"resolution must divide the image size {h}, got {resolution}")
    f = h // resolution
    x = b.x.reshape(b.x.shape[0], resolution, f, resolution, f, b.x.shape[-1]).mean((2, 4))
    b = data.Batch(x, b.y)
  return b


def ones(resolution: int):
  """The all-ones image ``(1, resolution, resolution, 3)``."""
  return jnp.ones((1, resolution, resolution, 3), jnp.float32)
