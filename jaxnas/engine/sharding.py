"""Spreading architectures over devices and hosts (the one-file compat shim for multi-device code).

Single host, many devices: the architectures of a chunk are split along a 1-D
:class:`jax.sharding.Mesh` (axis ``'archs'``) with a :class:`~jax.sharding.NamedSharding`; each
device runs the proxy on its slice through ``shard_map`` (a ``lax.map`` over a sharded axis cannot
be partitioned by the compiler, so the per-device program is written explicitly). The minibatch and
key are replicated. A score depends only on (architecture, seed, batch), so the device count never
changes the results.

Many hosts (a multi-GPU node run as one process per GPU, or a TPU pod slice)::

    import jax
    jax.distributed.initialize()          # coordinator address etc. from the environment
    i, n = jax.process_index(), jax.process_count()
    mine = archs[process_share(len(archs), i, n)]
    engine.score(space, mine, ...)        # on this process's local devices only

or on the command line ``jaxnas score --distributed ...`` (each process writes ``OUT.shard-I-of-N``;
``jaxnas.engine.store.merge`` joins the finished shards), or ``--shard I/N`` to split a run by hand
across independent machines. Processes never communicate while scoring: each scores a contiguous
share of the architecture list on its :func:`jax.local_devices`.

This module is the only place that names sharding APIs (``shard_map`` itself comes from
:mod:`jaxnas._compat`, the one module that bridges JAX releases).
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxnas import _compat
from jaxnas.errors import JaxnasInputError

AXIS = "archs"

shard_map = _compat.shard_map


def local_mesh(devices: Optional[Sequence] = None) -> Mesh:
  """A 1-D mesh (axis ``'archs'``) over ``devices`` (default: every local device)."""
  devs = list(jax.local_devices() if devices is None else devices)
  if not devs:
    raise JaxnasInputError("no devices to score on (empty device list)")
  return Mesh(np.asarray(devs, dtype=object), (AXIS,))


def resolve_devices(devices) -> list:
  """Device list from ``None`` (all local devices), an int (the first ``n``) or a sequence."""
  local = jax.local_devices()
  if devices is None:
    return list(local)
  if isinstance(devices, (int, np.integer)):
    if not 1 <= devices <= len(local):
      raise JaxnasInputError(
          f"devices must be between 1 and the {len(local)} local device(s), got {devices}")
    return list(local[:devices])
  devs = list(devices)
  if not devs:
    raise JaxnasInputError("no devices to score on (empty device list)")
  return devs


def archs_spec() -> PartitionSpec:
  """Leading axis split over the mesh."""
  return PartitionSpec(AXIS)


def replicated_spec() -> PartitionSpec:
  """No axis split: a full copy on every device of the mesh."""
  return PartitionSpec()


def put_sharded(mesh: Mesh, x):
  """Places ``x`` with its leading axis split over the mesh."""
  return jax.device_put(x, NamedSharding(mesh, archs_spec()))


def put_replicated(mesh: Mesh, tree):
  """Places every leaf of ``tree`` on every device of the mesh."""
  return jax.device_put(tree, NamedSharding(mesh, replicated_spec()))


def process_share(n: int, index: int, count: int) -> slice:
  """The contiguous share of ``n`` items scored by process ``index`` of ``count``.

  Shares differ in size by at most one and cover ``range(n)`` exactly once, in order.
  """
  if count < 1 or not 0 <= index < count:
    raise JaxnasInputError(f"shard index must be in 0..{count - 1} of {count}, got {index}")
  base, extra = divmod(n, count)
  start = index * base + min(index, extra)
  return slice(start, start + base + (1 if index < extra else 0))


def parse_shard(text: str) -> tuple[int, int]:
  """``'I/N'`` -> ``(I, N)`` with ``0 <= I < N`` (the ``--shard`` option)."""
  try:
    i, n = (int(t) for t in text.split("/"))
  except ValueError:
    raise JaxnasInputError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
  if n < 1 or not 0 <= i < n:
    raise JaxnasInputError(f"--shard I/N needs 0 <= I < N, got {text!r}")
  return i, n
