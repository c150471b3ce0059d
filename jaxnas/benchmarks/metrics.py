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


#: Bootstrap resamples of :func:`spearman_interval` and its level.
N_BOOT = 2000
LEVEL = 0.95
#: Resampled values ranked at once (bounds the memory of a bootstrap over many architectures:
#: all 15,625 of NB201 take 4 resamples of 2,000 at a time, ~60 MB per array).
CHUNK_VALUES = 2**23


def _row_spearman(a, b):
  """Spearman rho of each row pair of ``(R, n)`` arrays (average ranks for ties); NaN for a row
  where either side is constant."""
  ra = scipy.stats.rankdata(a, axis=1)
  rb = scipy.stats.rankdata(b, axis=1)
  ra -= ra.mean(axis=1, keepdims=True)
  rb -= rb.mean(axis=1, keepdims=True)
  den = np.sqrt(np.sum(ra * ra, axis=1) * np.sum(rb * rb, axis=1))
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(den > 0, np.sum(ra * rb, axis=1) / np.where(den > 0, den, 1.0), np.nan)


def spearman_interval(scores, truth, reference=None, n_boot: int = N_BOOT, level: float = LEVEL,
                      seed: int = 0) -> dict:
  """Percentile-bootstrap interval of Spearman's rho over the architectures.

  Resamples the ``n`` (score, truth) pairs with replacement ``n_boot`` times (``seed`` fixes the
  draws) and returns ``{"lo", "hi"}``, the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of
  the resampled rho. With ``reference`` (another implementation's or proxy's scores of the same
  architectures) it also returns ``diff_lo``/``diff_hi``: the interval of
  ``rho(scores, truth) - rho(reference, truth)`` over the *same* resamples (a paired bootstrap:
  how far apart the two correlations are, given that they share their architectures). Rows where
  any input is NaN or infinite are dropped first, as in :func:`spearman`; resamples where a side
  is constant are left out of the quantiles. Fewer than 3 rows: NaN bounds.
  """
  s, t = np.asarray(scores, np.float64), np.asarray(truth, np.float64)
  r = None if reference is None else np.asarray(reference, np.float64)
  if s.shape != t.shape or (r is not None and r.shape != s.shape):
    raise JaxnasInputError(f"scores {s.shape}, truth {t.shape}"
                           + ("" if r is None else f" and reference {r.shape}")
                           + " must have the same shape")
  if not 0.0 < level < 1.0:
    raise JaxnasInputError(f"level must lie in (0, 1), got {level}")
  if n_boot < 1:
    raise JaxnasInputError(f"n_boot must be a positive integer, got {n_boot}")
  ok = np.isfinite(s) & np.isfinite(t) & (True if r is None else np.isfinite(r))
  s, t = s[ok], t[ok]
  keys = ("lo", "hi") if r is None else ("lo", "hi", "diff_lo", "diff_hi")
  if len(s) < 3:
    return dict.fromkeys(keys, float("nan"))
  rng = np.random.default_rng(seed)
  step = max(1, CHUNK_VALUES // len(s))
  rho, diff = [], []
  for start in range(0, n_boot, step):      # draws made chunk by chunk, in order
    idx = rng.integers(0, len(s), size=(min(step, n_boot - start), len(s)))
    rho.append(_row_spearman(s[idx], t[idx]))
    if r is not None:
      diff.append(rho[-1] - _row_spearman(r[ok][idx], t[idx]))
  q = ((1.0 - level) / 2, (1.0 + level) / 2)
  out = dict(zip(("lo", "hi"), _quantiles(np.concatenate(rho), q)))
  if r is not None:
    out.update(zip(("diff_lo", "diff_hi"), _quantiles(np.concatenate(diff), q)))
  return out


def _quantiles(v, q):
  v = v[np.isfinite(v)]
  return [float(x) for x in np.quantile(v, q)] if len(v) else [float("nan")] * len(q)
