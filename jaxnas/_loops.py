"""``lax.map`` or a Python loop, for code that runs both compiled and eagerly.

Under the engine's ``'eager'`` executor a network is unrolled for one concrete architecture and
run op by op; ``jax.lax.map`` over such a network would compile its whole unrolled program once
per architecture, while a Python loop reuses the compiled blocks. Compiled (``jit``, ``lax.map``
over architectures) the architecture is traced and ``lax.map`` keeps the program small.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def map_rows(f, xs, python: bool, compile_rows: bool = False):
  """``jax.lax.map(f, xs)`` (``python=False``) or ``stack([f(x) for x in rows of xs])``.

  ``xs`` is a pytree whose leaves share a leading axis; so is the result. Same values either way
  (to float rounding with ``compile_rows``).

  ``compile_rows`` (Python loop only): ``f`` is compiled once, for the concrete network it closes
  over, and the compiled program runs every row. For many rows of a costly ``f`` this beats running
  it op by op, whose per-operation dispatch is paid again on every row: SWAP's 32
  re-initialisations of the unrolled NB101 network take 43 s per architecture this way against
  74 s op by op; on the DARTS supernet, whose unrolled program takes 22-28 s to compile, both
  take 31 s (``experiments/bench_swap_rows.py``).
  """
  if not python:
    return jax.lax.map(f, xs)
  if compile_rows:
    f = jax.jit(f)
  n = jax.tree_util.tree_leaves(xs)[0].shape[0]
  outs = [f(jax.tree_util.tree_map(lambda a: a[i], xs)) for i in range(n)]
  return jax.tree_util.tree_map(lambda *ys: jnp.stack(ys), *outs)
