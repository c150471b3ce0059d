"""jaxnas' default XLA:CPU settings, applied only when the user has set none.

Measured on the engine's real workloads by ``experiments/xla_flags.py`` (figures in BENCHMARKS.md,
"XLA:CPU settings"). XLA reads ``XLA_FLAGS`` once, when the first computation starts its backend,
so these apply when jaxnas is imported before any JAX computation runs (the ``jaxnas`` command
always is). Rules:

* ``XLA_FLAGS`` already set (even to an empty string): left exactly as it is;
* ``JAXNAS_XLA_FLAGS=none``: nothing is set; ``JAXNAS_XLA_FLAGS="--flag=v ..."``: those are used;
* otherwise :data:`DEFAULT_CPU_FLAGS` (when not empty) on JAX releases known to accept them (XLA
  stops the process on an unknown flag, so older releases get nothing).

Measured on jax 0.12 (BENCHMARKS.md, "XLA:CPU settings"): XNNPACK, oneDNN and the XNNPACK graph
fusion modes neither speed up nor change the engine's scores (grad_norm, nwot, synflow at full
size: 0.97-1.15x the default's time, scores bit-identical): its CPU path runs every convolution
inside ``lax.map``/``lax.switch`` bodies, where XLA does not hand them to those libraries. So the
default is to set nothing; the mechanism stays for an executor that does benefit.

The flags name only the CPU backend; GPU and TPU backends ignore them.
"""

from __future__ import annotations

import os

#: Flags applied by default ("" = none; see the module docstring for the measurement).
DEFAULT_CPU_FLAGS = ""
#: Oldest jax release on which :data:`DEFAULT_CPU_FLAGS` was seen accepted (0.10.2, 0.12.0.1).
MIN_JAX = (0, 10)


def _jax_version() -> tuple:
  from importlib.metadata import PackageNotFoundError, version  # pylint: disable=g-import-not-at-top
  try:
    return tuple(int(p) for p in version("jax").split(".")[:2])
  except (PackageNotFoundError, ValueError):
    return (0, 0)


def default_flags(environ=None) -> str | None:
  """The ``XLA_FLAGS`` jaxnas would set for this environment, or None to leave it alone."""
  env = os.environ if environ is None else environ
  if "XLA_FLAGS" in env:
    return None
  choice = env.get("JAXNAS_XLA_FLAGS")
  if choice is not None:
    return None if choice.strip().lower() in ("", "none") else choice
  if not DEFAULT_CPU_FLAGS:
    return None
  return DEFAULT_CPU_FLAGS if _jax_version() >= MIN_JAX else None


def _apply(var: str, decide, environ) -> str | None:
  """Sets ``var`` to ``decide(env)`` unless that is None; returns what it set."""
  env = os.environ if environ is None else environ
  value = decide(env)
  if value is not None:
    env[var] = value
  return value


def apply_defaults(environ=None) -> str | None:
  """Sets ``XLA_FLAGS`` per :func:`default_flags`; returns what it set (None: nothing)."""
  return _apply("XLA_FLAGS", default_flags, environ)


#: Variables that set the BLAS/LAPACK libraries' own thread counts; when the user set any, jaxnas
#: leaves them alone.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: ``JAXNAS_BLAS_THREADS``: ``none`` leaves the BLAS libraries' defaults, a number sets them.
BLAS_ENV = "JAXNAS_BLAS_THREADS"
#: Threads jaxnas gives OpenBLAS by default (measured: experiments/blas_threads.py).
DEFAULT_BLAS_THREADS = "1"


def blas_threads(environ=None) -> str | None:
  """The ``OPENBLAS_NUM_THREADS`` jaxnas would set, or None to leave the environment alone.

  XLA:CPU runs LAPACK (``eigh``, ``slogdet``, ``cholesky``: MeCo, AZ-NAS, jacob_cov, HNAS, NASI)
  through scipy's OpenBLAS, whose own threads spin beside XLA's thread pool: with two scoring
  processes on two cores (``--shard``) MeCo ran 2-4x slower than with one OpenBLAS thread
  (experiments/blas_threads.py, BENCHMARKS.md "BLAS threads"). Takes effect only when set before
  numpy is first imported (the ``jaxnas`` command, or ``import jaxnas`` first)."""
  env = os.environ if environ is None else environ
  if any(v in env for v in BLAS_THREAD_VARS):
    return None
  choice = env.get(BLAS_ENV, DEFAULT_BLAS_THREADS).strip().lower()
  if choice in ("", "none"):
    return None
  if not choice.isdigit() or int(choice) < 1:
    raise ValueError(f"{BLAS_ENV}={choice!r}: give a positive integer or 'none'")
  return choice


def apply_blas_threads(environ=None) -> str | None:
  """Sets ``OPENBLAS_NUM_THREADS`` per :func:`blas_threads`; returns what it set (None: nothing)."""
  return _apply("OPENBLAS_NUM_THREADS", blas_threads, environ)


#: Environment variable naming a folder for JAX's persistent compilation cache.
CACHE_ENV = "JAXNAS_COMPILATION_CACHE"


def apply_compilation_cache(environ=None) -> str | None:
  """With ``JAXNAS_COMPILATION_CACHE=DIR``, JAX's persistent compilation cache in ``DIR``, keeping
  every program however quick to compile (the ``'eager'`` executor's blocks take ~0.1 s each, under
  JAX's default 1 s threshold, and there are a few hundred); a later process then starts scoring
  without compiling. Returns the folder (None: the cache is left as JAX configures it)."""
  env = os.environ if environ is None else environ
  path = env.get(CACHE_ENV, "").strip()
  if not path:
    return None
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_compilation_cache_dir", os.path.abspath(os.path.expanduser(path)))
  for name, value in (("jax_persistent_cache_min_compile_time_secs", 0.0),
                      ("jax_persistent_cache_min_entry_size_bytes", 0)):
    try:
      jax.config.update(name, value)
    except AttributeError:   # an option this JAX release lacks
      pass
  return path
