"""Benchmark ground truth (bundled in the package) and rank-correlation metrics."""

from jaxnas.benchmarks.metrics import (kendall, pearson, rank_report, spearman,
                                       spearman_interval, top_k_overlap, top_k_precision)
from jaxnas.benchmarks import nb101, nb301
from jaxnas.benchmarks.nb201 import METRICS, accuracy, lookup, table


def truths() -> dict:
  """Every ground-truth metric, by the name of the space it measures: each space declares its
  benchmark's ``metrics`` and looks them up (``SearchSpace.accuracy``)."""
  from jaxnas.spaces import loaded_spaces
  return {m: name for name, sp in loaded_spaces().items() for m in sp.metrics}


def __getattr__(name):  # TRUTHS is computed from the registered spaces on first use
  if name == "TRUTHS":
    return truths()
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def truth(metric: str, indices, arch_strs=None):
  """Ground truth ``metric`` of architectures given by benchmark ``indices`` (enumerable spaces:
  NB201) or by ``arch_strs`` (spaces without a global index); NaN where the benchmark has no
  value."""
  import numpy as np
  from jaxnas.errors import JaxnasInputError, unknown
  from jaxnas.spaces import get_space
  owners = truths()
  if metric not in owners:
    raise unknown("truth metric", metric, sorted(owners))
  space = get_space(owners[metric])
  if indices is not None and space.from_index is not None and metric in METRICS:
    return np.asarray(accuracy(indices, metric), np.float64)   # NB201: by index, no round trip
  if indices is not None and space.from_index is not None:
    return np.asarray(space.accuracy(space.from_index(np.asarray(indices)), metric), np.float64)
  if arch_strs is None:
    raise JaxnasInputError(f"truth {metric!r} is looked up by architecture; give arch_strs")
  return np.asarray(space.accuracy(np.stack([space.encode(a) for a in arch_strs]), metric),
                    np.float64)


__all__ = ["METRICS", "TRUTHS", "truth", "truths", "nb101", "nb301", "accuracy", "lookup", "table", "spearman",
           "pearson", "kendall", "top_k_overlap", "top_k_precision", "rank_report",
           "spearman_interval"]
