"""jaxnas' default XLA:CPU flags: applied only when the user set none, overridable, and in effect."""

import subprocess
import sys

import pytest

from jaxnas import _xla
from tests.conftest import REPO


def test_user_flags_win_and_the_override_is_honoured():
  assert _xla.default_flags({"XLA_FLAGS": ""}) is None            # set, even empty: untouched
  assert _xla.default_flags({"XLA_FLAGS": "--xla_cpu_use_xnnpack=false"}) is None
  assert _xla.default_flags({"JAXNAS_XLA_FLAGS": "none"}) is None
  assert _xla.default_flags({"JAXNAS_XLA_FLAGS": "--a=1"}) == "--a=1"
  env = {}
  got = _xla.apply_defaults(env)
  if _xla.DEFAULT_CPU_FLAGS:
    assert got == env["XLA_FLAGS"] == _xla.DEFAULT_CPU_FLAGS
  else:  # the measured default is to set nothing
    assert got is None and "XLA_FLAGS" not in env
  env = {"JAXNAS_XLA_FLAGS": "--xla_cpu_use_xnnpack=true"}
  assert _xla.apply_defaults(env) == env["XLA_FLAGS"] == "--xla_cpu_use_xnnpack=true"


def test_importing_jaxnas_sets_the_default_only_without_user_flags():
  code = "import os, jaxnas; print(repr(os.environ.get('XLA_FLAGS')))"
  base = {"PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"}
  mine = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                        timeout=120, env={**base, "XLA_FLAGS": "--xla_cpu_enable_fast_math=false"})
  assert mine.stdout.strip() == repr("--xla_cpu_enable_fast_math=false"), mine.stderr
  dflt = subprocess.run([sys.executable, "-c", code + "; import jax; jax.numpy.ones(2).block_until_ready()"],
                        cwd=REPO, capture_output=True, text=True, timeout=120, env=base)
  assert dflt.returncode == 0, dflt.stderr  # XLA accepted the flags (it aborts on unknown ones)
  assert dflt.stdout.strip() == repr(_xla.default_flags({})), dflt.stdout
  chosen = subprocess.run([sys.executable, "-c", code + "; import jax; jax.numpy.ones(2).block_until_ready()"],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**base, "JAXNAS_XLA_FLAGS": "--xla_cpu_use_xnnpack=true"})
  assert chosen.returncode == 0 and chosen.stdout.strip() == repr("--xla_cpu_use_xnnpack=true"), \
      chosen.stdout + chosen.stderr


def test_compilation_cache_is_opt_in_and_keeps_quick_programs(tmp_path):
  """JAXNAS_COMPILATION_CACHE=DIR: every compiled program (even a ~0.1 s block) lands in DIR."""
  assert _xla.apply_compilation_cache({}) is None
  cache = tmp_path / "xla"
  code = ("import jax, jaxnas; print(jax.config.jax_compilation_cache_dir); "
          "jax.jit(lambda x: x * 2 + 1)(jax.numpy.ones(3)).block_until_ready()")
  base = {"PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu", "JAXNAS_COMPILATION_CACHE": str(cache)}
  run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120, env=base)
  assert run.returncode == 0, run.stderr
  assert run.stdout.strip() == str(cache)
  assert cache.is_dir() and any(cache.iterdir()), "nothing was written to the cache"


def test_one_openblas_thread_by_default_and_user_settings_win():
  assert _xla.blas_threads({}) == _xla.DEFAULT_BLAS_THREADS == "1"
  for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    assert _xla.blas_threads({var: "4"}) is None, var          # the user's count: untouched
  assert _xla.blas_threads({"JAXNAS_BLAS_THREADS": "none"}) is None
  env = {"JAXNAS_BLAS_THREADS": "2"}
  assert _xla.apply_blas_threads(env) == "2" and env["OPENBLAS_NUM_THREADS"] == "2"
  with pytest.raises(ValueError, match="JAXNAS_BLAS_THREADS='0'.*positive integer or 'none'"):
    _xla.blas_threads({"JAXNAS_BLAS_THREADS": "0"})
  # a fresh process importing jaxnas gets it (OpenBLAS reads it when numpy loads it), a user's
  # own setting is kept
  code = "import jaxnas, os; print(os.environ.get('OPENBLAS_NUM_THREADS'))"
  base = {"PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"}
  for env, want in (({}, "1"), ({"OMP_NUM_THREADS": "3"}, "None")):
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120, env={**base, **env})
    assert run.returncode == 0 and run.stdout.strip() == want, run.stdout + run.stderr
