"""Rank helpers for pool-relative scores (AZ-NAS' aggregation, ``ensemble_v2``)."""

from __future__ import annotations

import numpy as np
import scipy.stats

from jaxnas.errors import JaxnasInputError

#: A component's value where the reference gives -inf or NaN (below any attainable value).
DEGENERATE = -1e30


def log_ranks(values) -> np.ndarray:
  """``ln(rank / N)`` of ``values`` ``(N,)``: ranks ascending (``scipy.stats.rankdata``, ties
  averaged), NaN, -inf and values ``<= DEGENERATE`` tied at the bottom; 0 for the largest."""
  a = np.asarray(values, np.float64)
  if a.ndim != 1 or a.size == 0:
    raise JaxnasInputError(f"log_ranks needs a non-empty 1-D array of scores, got shape {a.shape}")
  a = np.where(np.isnan(a) | (a <= DEGENERATE), -np.inf, a)
  return np.log(scipy.stats.rankdata(a, method="average") / a.size)
