"""Whether a compiled scorer fits the device it runs on.

XLA reports what a compiled program needs before it runs (``Compiled.memory_analysis()``)::

    needs = arguments + outputs + temporaries          (bytes, one call of the program)

and the device says what it has: an accelerator's allocator limit (``memory_stats()``'s
``bytes_limit``) or, on CPU, the memory Linux can still give a process without swapping
(``MemAvailable`` of ``/proc/meminfo``). Mode ``'auto'`` uses both to avoid a compiled program
that cannot run (:class:`jaxnas.engine.scoring.FitScoreFn`): GraSP's Hessian-vector product on
the DARTS supernet (C=32, 8 cells, batch 64) through ``linearize`` keeps the intermediates of
every op of every edge; XLA sizes its ``map`` program at 61.7 GiB (the run asked for 66 GB),
where the genotype's discrete network (``'eager'``) peaks at 10.7 GiB
(``experiments/bench_grasp_memory.py [--analysis]``).

A process also runs out of *memory maps* before it runs out of memory: XLA:CPU links each
compiled kernel as an in-memory library of three maps (code, constants, data), JAX keeps the
programs of live jitted functions until ``jax.clear_caches()``, and Linux refuses every mmap past
``vm.max_map_count`` (65,530 by default), whereupon the next compilation dies inside XLA (a
segfault, or "Failed to materialize symbols"). One pytest worker running half of jaxnas' suite
reached 64,701 maps and crashed so; :func:`release_compiled_near_map_limit` clears the caches
when a process is near its limit, before the engine builds a scorer and before a search runs.
"""

from __future__ import annotations

import gc
import warnings
from typing import Optional

import jax


def program_bytes(compiled) -> Optional[int]:
  """Bytes one call of a compiled program (``jax.stages.Compiled``) needs: arguments, outputs
  and temporaries from XLA's memory analysis; None when the backend gives none."""
  try:
    stats = compiled.memory_analysis()
  except (NotImplementedError, RuntimeError):   # a backend without the analysis: unknown, and
    return None                                  # the caller then assumes nothing
  if stats is None:
    return None
  return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
             + stats.temp_size_in_bytes)


def available_bytes(device, meminfo: str = "/proc/meminfo") -> Optional[int]:
  """Bytes ``device`` can give a program: an accelerator's ``bytes_limit``; on CPU Linux's
  ``MemAvailable``; None when neither is known (then nothing is assumed)."""
  try:
    stats = device.memory_stats()
  except (NotImplementedError, RuntimeError, AttributeError):   # no allocator statistics (CPU
    stats = None                                                # clients): read the OS below
  if stats and stats.get("bytes_limit"):
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
  if getattr(device, "platform", None) != "cpu":
    return None
  try:
    with open(meminfo, encoding="ascii") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024     # the file counts kB
  except (OSError, ValueError, IndexError):
    pass
  return None


def gib(n: int) -> str:
  """``n`` bytes in GiB, three significant digits (``'12.3 GiB'``, ``'0.00123 GiB'``)."""
  return f"{n / 2**30:.3g} GiB"


def memory_maps(maps: str = "/proc/self/maps",
                limit: str = "/proc/sys/vm/max_map_count") -> Optional[tuple[int, int]]:
  """``(maps this process holds, the most Linux lets it hold)``; None where unknown (not Linux)."""
  try:
    with open(maps, "rb") as f:
      held = sum(1 for _ in f)
    with open(limit, encoding="ascii") as f:
      most = int(f.read().split()[0])
  except (OSError, ValueError, IndexError):
    return None
  return held, most


def release_compiled() -> None:
  """Drops every compiled program JAX caches, and the executables only they kept alive (with
  their memory maps); they compile again on their next use, to the same programs."""
  jax.clear_caches()
  gc.collect()


def release_compiled_near_map_limit(fraction: float = 0.8, **files) -> bool:
  """When this process holds at least ``fraction`` of its memory-map limit (module docstring),
  drops every compiled program JAX caches (``jax.clear_caches()``; they compile again on their
  next use, to the same programs) and warns once per release, naming the count and the remedy.
  Returns whether it released. ``files``: :func:`memory_maps`' paths (tests)."""
  got = memory_maps(**files)
  if got is None or got[0] < fraction * got[1]:
    return False
  release_compiled()
  warnings.warn(
      f"this process held {got[0]:,} memory maps of the {got[1]:,} Linux allows it "
      "(vm.max_map_count); XLA:CPU maps three per compiled kernel and a process at the limit "
      "crashes in its next compilation, so jaxnas cleared JAX's compiled programs "
      "(jax.clear_caches(); they compile again when next used). To keep them, raise the limit, "
      "e.g. `sysctl -w vm.max_map_count=262144`.", RuntimeWarning, stacklevel=3)
  return True
