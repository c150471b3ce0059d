"""Benchmark ground truth (bundled in the package) and rank-correlation metrics."""

from jaxnas.benchmarks.metrics import (kendall, pearson, rank_report, spearman, top_k_overlap,
                                       top_k_precision)
from jaxnas.benchmarks.nb201 import METRICS, accuracy, lookup, table

__all__ = ["METRICS", "accuracy", "lookup", "table", "spearman", "pearson", "kendall", "top_k_overlap",
           "top_k_precision", "rank_report"]
