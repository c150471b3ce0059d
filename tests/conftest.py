"""Shared fixtures: tiny networks (C=4, N=1, 8x8 inputs) and the shared ground-truth folder."""

import os
import pathlib

import jax
import jax.numpy as jnp
import pytest

# Deterministic, quiet, and cheap to compile.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
jax.config.update("jax_numpy_rank_promotion", "allow")
# Tests use tiny networks: compile time dominates, so skip most XLA optimisations (as flax's own
# model tests do); this halves compile time and does not change what is computed.
jax.config.update("jax_disable_most_optimizations", True)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """After each test module, drop every compiled program JAX holds (``jax.clear_caches``).

  XLA:CPU links each compiled kernel as an in-memory library of three memory maps, and JAX keeps
  the programs of long-lived jitted functions (the library's, and those its caches hold) until
  its caches are cleared. Without this, an xdist worker running half the suite reached 64,701
  maps (``/proc/<pid>/maps``), Linux's ``vm.max_map_count`` being 65,530: every further mmap
  fails and the worker dies inside XLA in whichever test compiles next (a segfault in
  ``backend_compile_and_load``, "Failed to materialize symbols", MemoryError), which failed two
  runs of ``.ci/run``. Cleared per module, the peak was 24,495 maps (the proxy contract module)
  and the worker's peak memory 4.2 GB instead of 5.2 GB, for 6 % more suite time."""
  from jaxnas.engine import memory
  yield
  memory.release_compiled()


def pytest_configure(config):
  """With pytest-rerunfailures (in the ``test`` extra): a test whose xdist worker *crashed* (a
  native fault inside XLA; its cause is fixed, :func:`_release_compiled_programs`, and this
  stays as a safety net) is run once more on a fresh worker and reported as ``RERUN``; ordinary
  failures are never rerun (``--only-rerun`` with a pattern that matches nothing). Options given
  on the command line win."""
  if not config.pluginmanager.hasplugin("rerunfailures"):
    return
  if not getattr(config.option, "reruns", None):
    config.option.reruns = 1
    config.option.only_rerun = [r"(?!)"]


REPO = pathlib.Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout; JAXNAS_SHARED_DATA points elsewhere (a worktree or clone
# outside the project folder would otherwise skip the ground-truth tests)
SHARED = pathlib.Path(os.environ.get("JAXNAS_SHARED_DATA", REPO.parent / "shared" / "data"))
TINY = dict(C=4, N=1)


def experiment_script(name: str):
  """The module ``experiments/<name>.py`` (the scripts are not a package), loaded from its file."""
  import importlib.util
  spec = importlib.util.spec_from_file_location(name, REPO / "experiments" / f"{name}.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def shared_file(name: str) -> pathlib.Path:
  """Path of a file in ../shared/data; skips the test (with the reason) when it is absent."""
  p = SHARED / name
  if not p.exists():
    pytest.skip(f"{p} not present (the shared data folder is not mounted here)")
  return p


@pytest.fixture
def key():
  return jax.random.key(0)


@pytest.fixture
def tiny_x():
  return jax.random.normal(jax.random.key(1), (4, 8, 8, 3), jnp.float32)


def tiny_batch_of(n: int = 8, res: int = 8, seed: int = 0):
  """Real bundled CIFAR-10 images average-pooled to ``res`` x ``res`` (normalised), with labels."""
  from jaxnas import data
  b = data.minibatch("cifar10-bundled", n, seed=seed)
  f = 32 // res
  x = b.x.reshape(n, res, f, res, f, 3).mean((2, 4))
  return data.Batch(x, b.y)


@pytest.fixture
def tiny_batch():
  return tiny_batch_of()


def tiny_net(arch, **config):
  """A tiny NB201 network (C=4, N=1) bound to ``arch`` (any encoding)."""
  from jaxnas import spaces
  cfg = dict(TINY)
  cfg.update(config)
  return spaces.network("nb201", arch, **cfg)


def tiny_proxy_net(proxy_name: str):
  """The tiny NB201 network (C=4, N=1) configured as ``proxy_name`` runs it (BN mode, classes),
  with a placeholder architecture: bind one with ``net._replace(arch=a)``."""
  import numpy as np
  from jaxnas import engine, spaces
  from jaxnas.proxies import get_proxy
  space = spaces.get_space("nb201")
  module = engine.scoring.module_for(space, get_proxy(proxy_name), dict(TINY))
  return spaces.Network(space, module, np.zeros(6, np.int32))
