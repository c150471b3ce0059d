"""Shared pieces of the theory checks: data, architecture samples, mapping over architectures."""

from __future__ import annotations

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
  """The batch's inputs with labels drawn uniformly from 10 classes (key from ``seed``)."""
  y = jax.random.randint(jax.random.key(seed), batch.y.shape, 0, 10, jnp.int32)
  return data.Batch(batch.x, y)


def sample_archs(n: int, seed: int) -> np.ndarray:
  """``n`` distinct NB201 architectures drawn uniformly (seeded), sorted by benchmark index."""
  idx = np.sort(np.random.default_rng(seed).choice(nb201.NUM_ARCHS, n, replace=False))
  return nb201.from_index(idx)


_INIT_CACHE: dict = {}


def init_variables(module, arch, batch, seed: int):
  """Variables of one architecture, initialised as :func:`jaxnas.engine.score` does (PyTorch
  default init from ``fold_in(key(seed), benchmark_index)``); jitted, cached per module."""
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
  cheap to compile once) carrying the values :func:`init_variables` gives the shared build."""
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
