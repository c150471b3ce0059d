"""NAS-Bench-201 accuracies (%), bundled with the package, by benchmark index or arch string.

Metrics (methods-spec §1.3; ``shared/README``):

* ``cifar10_test200``, ``cifar100_test200``: test accuracy after the 200-epoch schedule, mean over
  seeds, all 15,625 architectures. The literature's whole-space correlations use these.
* ``cifar10_val200``, ``cifar100_val200``, ``imagenet16_val200``: 200-epoch validation accuracy on
  the 500-architecture NAS-Bench-Suite-Zero subset (NaN elsewhere).
* ``cifar10valid_val12``, ``cifar10_test12``, ``cifar100_val12``, ``cifar100_test12``: after the
  12-epoch schedule; the "observed performance" hybrid searches (HNAS) may query. Never report
  search results against these.
"""

from __future__ import annotations

import functools

import numpy as np

from jaxnas import _assets
from jaxnas.errors import unknown

FULL = ("cifar10_test200", "cifar100_test200", "cifar10valid_val12", "cifar10_test12",
        "cifar100_val12", "cifar100_test12")
SUBSET = ("cifar10_val200", "cifar100_val200", "imagenet16_val200")
METRICS = FULL + SUBSET
NUM_ARCHS = 15625


@functools.lru_cache(maxsize=1)
def table() -> dict:
  """All metrics as float64 arrays indexed by benchmark index (NaN where not measured)."""
  d = _assets.load_npz("nb201.npz")
  out = {m: d[m].astype(np.float64) for m in FULL}
  idx = d["subset_index"]
  for m in SUBSET:
    col = np.full(NUM_ARCHS, np.nan)
    col[idx] = d["subset_" + m]
    out[m] = col
  out["subset_index"] = idx.astype(np.int64)
  return out


def subset_indices() -> np.ndarray:
  """Indices of the 500-architecture validation subset (NAS-Bench-Suite-Zero)."""
  return table()["subset_index"].copy()


def accuracy(indices, metric: str = "cifar10_test200") -> np.ndarray:
  """Accuracy (%) of benchmark indices (int or array) under ``metric``."""
  if metric not in METRICS:
    raise unknown("benchmark metric", metric, METRICS)
  from jaxnas.spaces import nb201 as space
  idx = np.asarray(indices)
  if idx.size:
    space.from_index(idx)  # range check with a clear error
  out = table()[metric][idx]
  return float(out) if out.ndim == 0 else out


def lookup(arch, metric: str = "cifar10_test200") -> float:
  """Accuracy of one architecture given as arch string, index, or op indices."""
  from jaxnas.spaces import nb201 as space
  return accuracy(space.to_index(space.encode(arch)), metric)
