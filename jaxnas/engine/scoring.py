"""Scoring many architectures with one compiled function per (proxy, shapes).

The architecture is an input of the network, so a proxy is traced once and mapped over a chunk of
architectures, either with ``jax.lax.map`` (sequential; each edge runs only its chosen op through
``lax.switch``) or ``jax.vmap`` (batched; every op of every edge is computed and selected). Each
architecture's variables are initialised inside the mapped function from
``fold_in(key, benchmark_index)``, so a score depends only on (architecture, seed, batch), never on
chunking, order or device count.
"""

from __future__ import annotations

import contextlib
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.data import Batch
from jaxnas.errors import JaxnasInputError, unknown
from jaxnas.proxies import Proxy, get_proxy
from jaxnas.spaces import Network, SearchSpace, get_space

MODES = ("map", "vmap")


def x64_context(proxy: Proxy):
  """``enable_x64`` for proxies that need float64 (synflow), else a no-op context."""
  if proxy.x64:
    from jax.experimental import enable_x64
    return enable_x64()
  return contextlib.nullcontext()


def module_for(space: SearchSpace, proxy: Proxy, config: Optional[dict] = None):
  """The space's module with the caller's configuration and then the proxy's overrides."""
  cfg = dict(config or {})
  cfg.update(dict(proxy.config))
  return space.model(**cfg)


def make_score_fn(space: SearchSpace, proxy: Proxy, config: Optional[dict] = None,
                  mode: str = "map"):
  """Jitted ``fn(archs (n, *arch_shape), ids (n,), batch, key) -> (n,) scores``.

  ``ids`` (e.g. benchmark indices) seed each architecture's initialisation: ``fold_in(key, id)``.
  """
  if mode not in MODES:
    raise unknown("scoring mode", mode, MODES)
  module = module_for(space, proxy, config)

  def one(arch, ident, batch, key):
    k = jax.random.fold_in(key, ident)
    k_init, k_proxy = jax.random.split(k)
    net = Network(space, module, arch)
    variables = net.init(k_init, batch.x) if proxy.needs_variables else None
    return jnp.asarray(proxy.fn(net, variables, batch, k_proxy)).reshape(())

  def many(archs, ids, batch, key):
    if mode == "vmap":
      return jax.vmap(one, in_axes=(0, 0, None, None))(archs, ids, batch, key)
    return jax.lax.map(lambda a: one(a[0], a[1], batch, key), (archs, ids))

  return jax.jit(many)


def default_batch_for(proxy: Proxy, batch: Batch) -> Batch:
  """The minibatch a proxy sees: the caller's, or one image of it for data-free proxies."""
  if not proxy.needs_data:
    return Batch(batch.x[:1], batch.y[:1])
  return batch


def score(space, archs, proxy_names, batch: Batch, *, seed: int = 0, ids=None,
          config: Optional[dict] = None, chunk_size: int = 64, mode: str = "map",
          progress=None) -> dict:
  """Scores architectures with each named proxy.

  Args:
    space: a :class:`SearchSpace` or its name.
    archs: ``(n, *arch_shape)`` op indices.
    proxy_names: iterable of registered proxy names.
    batch: the minibatch (data-free proxies get its first image only, for shapes).
    seed: seeds initialisation and proxy randomness.
    ids: per-architecture integers for key folding; default the benchmark index (enumerable
      spaces) or the position.
    config: module configuration (e.g. ``{'C': 8, 'N': 1}``).
    chunk_size: architectures per compiled call (the last chunk is padded, never recompiled).
    mode: ``'map'`` or ``'vmap'``.
    progress: optional callable ``progress(n_done)`` called after each chunk.

  Returns:
    dict name -> float64 array ``(n,)``; non-finite values are kept as NaN/inf, never replaced.
  """
  space = get_space(space) if isinstance(space, str) else space
  archs = np.asarray(archs, np.int32)
  if archs.ndim != 1 + len(space.arch_shape) or archs.shape[1:] != tuple(space.arch_shape):
    raise JaxnasInputError(
        f"archs must have shape (n, {', '.join(map(str, space.arch_shape))}), got {archs.shape}")
  if len(archs) == 0:
    raise JaxnasInputError("no architectures to score (empty list)")
  if ids is None:
    ids = space.to_index(archs) if space.to_index is not None else np.arange(len(archs))
  ids = np.asarray(ids, np.int32)
  key = jax.random.key(seed)
  out = {}
  for name in proxy_names:
    proxy = get_proxy(name)
    b = default_batch_for(proxy, batch)
    res = np.empty(len(archs), np.float64)
    with x64_context(proxy):
      fn = make_score_fn(space, proxy, config, mode)
      for start in range(0, len(archs), chunk_size):
        stop = min(start + chunk_size, len(archs))
        a, i = archs[start:stop], ids[start:stop]
        pad = chunk_size - (stop - start) if len(archs) > chunk_size else 0
        if pad:
          a = np.concatenate([a, np.repeat(a[-1:], pad, 0)])
          i = np.concatenate([i, np.repeat(i[-1:], pad, 0)])
        res[start:stop] = np.asarray(fn(a, i, b, key), np.float64)[:stop - start]
        if progress is not None:
          progress(stop - start)
    out[name] = res
  return out
