"""The only place that bridges JAX releases.

jaxnas runs on current JAX (>= 0.4.30) and, so that the neural-tangents oracle environment
(jax 0.4.23, neural-tangents 0.6.5; see ``experiments/nt_oracle.py``) can build the same networks,
still imports on jax 0.4.23. Everything that moved between those releases is named here once:

* ``enable_x64()``: a context with 64-bit floats on (``jax.enable_x64(True)``; formerly
  ``jax.experimental.enable_x64``);
* ``jaxpr_as_fun`` / ``jaxprs_in_params``: ``jax.extend.core`` (formerly ``jax.core``);
* ``shard_map(f, mesh, in_specs, out_specs)`` without replication checks (``jax.shard_map``;
  formerly ``jax.experimental.shard_map``);
* ``pure_callback(fn, result_shape, *args)``: a host callback run once per element under
  ``vmap`` (``vmap_method='sequential'``; formerly ``vectorized=False``);
* :func:`use_classic_prng`: the random stream. jax 0.5 turned ``jax_threefry_partitionable`` on by
  default, which changes every number drawn from a given key (``jax.random.normal(key(0), (3,))``
  is ``[1.816, -0.483, 0.340]`` on jax 0.4.23 and ``[1.623, 2.025, -0.434]`` on jax 0.12).
  Weights, batches and hence every score and search result would depend on the JAX release.
  Importing jaxnas keeps the classic stream (``jax_threefry_partitionable=False``), so a seed
  means the same networks on every supported JAX and the stored results stay reproducible; set
  ``JAXNAS_PRNG=jax`` before importing jaxnas to leave JAX's default alone.
"""

from __future__ import annotations

import os

import jax

#: ``JAXNAS_PRNG`` values: keep the classic threefry stream, or JAX's own default.
PRNG_CHOICES = ("classic", "jax")

if hasattr(jax, "enable_x64"):
  def enable_x64():
    """Context manager: 64-bit floats on inside (``jax.enable_x64(True)``)."""
    return jax.enable_x64(True)  # type: ignore[attr-defined]
else:  # jax < 0.5
  from jax.experimental import enable_x64  # type: ignore[no-redef]  # noqa: F401

try:
  from jax.extend.core import jaxpr_as_fun  # noqa: F401
except ImportError:  # jax < 0.4.30
  from jax.core import jaxpr_as_fun  # type: ignore[no-redef]  # noqa: F401

try:
  from jax.extend.core import jaxprs_in_params  # noqa: F401
except ImportError:  # older JAX
  from jax.core import jaxprs_in_params  # type: ignore[no-redef]  # noqa: F401

if hasattr(jax, "shard_map"):
  def shard_map(f, mesh, in_specs, out_specs):
    """``jax.shard_map`` without replication checks."""
    return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs,  # type: ignore
                         check_vma=False)
else:  # jax < 0.6
  from jax.experimental.shard_map import shard_map as _shard_map_old

  def shard_map(f, mesh, in_specs, out_specs):
    """``jax.experimental.shard_map`` without replication checks."""
    return _shard_map_old(f, mesh, in_specs, out_specs, check_rep=False)


def pure_callback(fn, result_shape, *args):
  """``jax.pure_callback`` looping over a ``vmap``-ed axis (one host call per element)."""
  try:
    return jax.pure_callback(fn, result_shape, *args, vmap_method="sequential")
  except TypeError:  # jax < 0.4.34: no vmap_method
    return jax.pure_callback(fn, result_shape, *args, vectorized=False)


def use_classic_prng() -> bool:
  """Sets ``jax_threefry_partitionable=False`` unless ``JAXNAS_PRNG=jax``; returns whether it did.

  A JAX without the option (one where the stream cannot differ) is left alone.
  """
  choice = os.environ.get("JAXNAS_PRNG", "classic")
  if choice not in PRNG_CHOICES:
    from jaxnas.errors import unknown  # pylint: disable=g-import-not-at-top
    raise unknown("JAXNAS_PRNG value", choice, PRNG_CHOICES)
  if choice != "classic":
    return False
  try:
    jax.config.update("jax_threefry_partitionable", False)
  except AttributeError:  # option removed: nothing to keep
    return False
  return True
