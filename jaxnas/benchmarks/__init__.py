"""Benchmark ground truth (bundled in the package) and rank-correlation metrics."""

from jaxnas.benchmarks.metrics import (kendall, pearson, rank_report, spearman, top_k_overlap,
                                       top_k_precision)
from jaxnas.benchmarks import nb101, nb301
from jaxnas.benchmarks.nb201 import METRICS, accuracy, lookup, table

#: Every ground-truth metric, by the space it measures: NB201's by benchmark index, the DARTS
#: space's (NAS-Bench-301 surrogate) by architecture encoding.
TRUTHS = {**{m: "nb201" for m in METRICS}, **{m: nb301.SPACE for m in nb301.METRICS},
          **{m: nb101.SPACE for m in nb101.METRICS}}
_BY_ARCH = {nb301.SPACE: nb301, nb101.SPACE: nb101}


def truth(metric: str, indices, arch_strs=None):
  """Ground truth ``metric`` of architectures given by benchmark ``indices`` (NB201) or by
  ``arch_strs`` (spaces without a global index); NaN where the benchmark has no value."""
  import numpy as np
  from jaxnas.errors import JaxnasInputError, unknown
  if metric not in TRUTHS:
    raise unknown("truth metric", metric, sorted(TRUTHS))
  if TRUTHS[metric] == "nb201":
    return accuracy(indices, metric)
  if arch_strs is None:
    raise JaxnasInputError(f"truth {metric!r} is looked up by architecture; give arch_strs")
  return np.asarray(_BY_ARCH[TRUTHS[metric]].accuracy_of(arch_strs, metric), np.float64)


__all__ = ["METRICS", "TRUTHS", "truth", "nb101", "nb301", "accuracy", "lookup", "table", "spearman",
           "pearson", "kendall", "top_k_overlap", "top_k_precision", "rank_report"]
