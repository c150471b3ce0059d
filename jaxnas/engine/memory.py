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
"""

from __future__ import annotations

from typing import Optional


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
