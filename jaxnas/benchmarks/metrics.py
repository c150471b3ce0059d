"""Rank metrics between proxy scores and ground truth.

All functions drop pairs where either value is NaN (and say how many in :func:`rank_report`), since
some proxies are undefined for degenerate architectures (epsinas reports them as NaN) and the subset
metrics exist only on 500 architectures.
"""

from __future__ import annotations

import numpy as np
import scipy.stats

from jaxnas.errors import JaxnasInputError


def _pairs(scores, truth):
  s, t = np.asarray(scores, np.float64), np.asarray(truth, np.float64)
  if s.shape != t.shape:
    raise JaxnasInputError(f"scores {s.shape} and truth {t.shape} must have the same shape")
  ok = np.isfinite(s) & np.isfinite(t)
  return s[ok], t[ok]


def spearman(scores, truth) -> float:
  """Spearman rank correlation rho (ties get average ranks); NaN if fewer than 3 pairs.

  >>> spearman([1.0, 2.0, 3.0, float("nan")], [10.0, 30.0, 20.0, 40.0])
  0.5
  """
  s, t = _pairs(scores, truth)
  if len(s) < 3:
    return float("nan")
  return float(scipy.stats.spearmanr(s, t).statistic)


def pearson(scores, truth) -> float:
  """Pearson correlation of the finite pairs; NaN if fewer than 3 pairs.

  >>> round(pearson([1.0, 2.0, 3.0], [2.0, 4.0, 6.5]), 4)
  0.9979
  """
  s, t = _pairs(scores, truth)
  if len(s) < 3:
    return float("nan")
  return float(scipy.stats.pearsonr(s, t).statistic)


def kendall(scores, truth) -> float:
  """Kendall tau-b; NaN if fewer than 3 pairs.

  >>> round(kendall([1, 2, 3, 4], [1, 3, 2, 4]), 4)
  0.6667
  """
  s, t = _pairs(scores, truth)
  if len(s) < 3:
    return float("nan")
  return float(scipy.stats.kendalltau(s, t).statistic)


def top_k_overlap(scores, truth, fraction: float = 0.1) -> float:
  """Fraction of the top-``fraction`` architectures by score that are also top by truth."""
  s, t = _pairs(scores, truth)
  k = max(1, int(round(fraction * len(s))))
  top_s = set(np.argsort(-s, kind="stable")[:k])
  top_t = set(np.argsort(-t, kind="stable")[:k])
  return len(top_s & top_t) / k


def top_k_precision(scores, truth, k: int = 64, truth_fraction: float = 0.05) -> float:
  """Fraction of the ``k`` best-scored architectures inside the top ``truth_fraction`` by truth."""
  s, t = _pairs(scores, truth)
  k = min(k, len(s))
  thresh = np.quantile(t, 1 - truth_fraction)
  return float(np.mean(t[np.argsort(-s, kind="stable")[:k]] >= thresh))


def rank_report(scores, truth) -> dict:
  """Spearman, Kendall, top-10% overlap, number of pairs used and of pairs dropped as non-finite."""
  s, t = np.asarray(scores, np.float64), np.asarray(truth, np.float64)
  n_ok = int(np.sum(np.isfinite(s) & np.isfinite(t)))
  return {"spearman": spearman(s, t), "kendall": kendall(s, t),
          "top10_overlap": top_k_overlap(s, t, 0.1) if n_ok else float("nan"),
          "n": n_ok, "n_nonfinite_scores": int(np.sum(~np.isfinite(s) & np.isfinite(t)))}
