"""Shared pieces of the theory checks: data, architecture samples, mapping over architectures."""

from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import data
from jaxnas.spaces import Network, get_space, nb201


def real_batch(n: int, resolution: int, seed: int) -> data.Batch:
  """``n`` bundled CIFAR-10 training images (CIFAR normalisation), average-pooled to ``resolution``."""
  b = data.minibatch("cifar10-bundled", n, seed=seed)
  f = 32 // resolution
  x = b.x.reshape(n, resolution, f, resolution, f, 3).mean((2, 4))
  return data.Batch(x, b.y)


def gaussian_like(batch: data.Batch, seed: int) -> data.Batch:
  """N(0, 1) inputs of the batch's shape, the batch's labels."""
  z = jax.random.normal(jax.random.key(seed), batch.x.shape, batch.x.dtype)
  return data.Batch(z, batch.y)


def random_labels(batch: data.Batch, seed: int) -> data.Batch:
  y = jax.random.randint(jax.random.key(seed), batch.y.shape, 0, 10, jnp.int32)
  return data.Batch(batch.x, y)


def sample_archs(n: int, seed: int) -> np.ndarray:
  """``n`` distinct NB201 architectures drawn uniformly (seeded), sorted by benchmark index."""
  idx = np.sort(np.random.default_rng(seed).choice(nb201.NUM_ARCHS, n, replace=False))
  return nb201.from_index(idx)


def map_archs(fn: Callable, archs, batch, *, seed: int, config: dict):
  """``fn(net, variables, batch, key)`` for each architecture (one compiled ``lax.map``).

  Variables are initialised exactly as :func:`jaxnas.engine.score` does (PyTorch default init from
  ``fold_in(key(seed), benchmark_index)``), so results line up with the registered proxies.
  Returns the stacked outputs (any pytree of arrays).
  """
  space = get_space("nb201")
  module = space.model(**config)
  ids = np.asarray(nb201.to_index(archs), np.int32)

  def one(arch, ident):
    k_init, k_fn = jax.random.split(jax.random.fold_in(jax.random.key(seed), ident))
    net = Network(space, module, arch)
    return fn(net, net.init(k_init, batch.x), batch, k_fn)

  run = jax.jit(lambda a, i, b: jax.lax.map(lambda ai: one(ai[0], ai[1]), (a, i)))
  return jax.tree_util.tree_map(np.asarray, run(jnp.asarray(archs, jnp.int32), ids, batch))


_INIT_CACHE: dict = {}


def init_variables(module, arch, batch, seed: int):
  """Variables of one architecture, initialised as :func:`map_archs` (jitted, cached per module)."""
  space = get_space("nb201")
  key = (module, batch.x.shape, seed)
  if key not in _INIT_CACHE:
    def init(a, ident, x):
      k_init = jax.random.split(jax.random.fold_in(jax.random.key(seed), ident))[0]
      return Network(space, module, a).init(k_init, x)
    _INIT_CACHE[key] = jax.jit(init)
  ident = np.int32(nb201.to_index(np.asarray(arch)))
  return _INIT_CACHE[key](jnp.asarray(arch, jnp.int32), ident, batch.x)


def discrete(config: dict, arch, batch, seed: int):
  """``(net, variables)``: the discrete build of ``arch`` (plain convs, only its ops' parameters,
  cheap to compile once) carrying the values :func:`map_archs` initialises the shared build with."""
  space = get_space("nb201")
  shared = init_variables(space.model(**config), arch, batch, seed)
  a = np.asarray(arch)
  variables = {k: nb201.discrete_params(t, a) for k, t in shared.items()}
  module = space.model(**config, fixed_arch=tuple(int(v) for v in a))
  return Network(space, module, None), variables


def rel_diff(a, b) -> float:
  """``max |a - b| / max |b|``."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


class Timer:
  """Wall seconds of named sections: ``with timer('name'): ...``; ``timer.seconds`` dict."""

  def __init__(self):
    self.seconds = {}

  def __call__(self, name):
    timer = self

    class _Section:
      def __enter__(self):
        self.t0 = time.perf_counter()

      def __exit__(self, *exc):
        timer.seconds[name] = round(time.perf_counter() - self.t0, 2)

    return _Section()
