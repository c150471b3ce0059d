"""HNAS' unifying claim: gradient-based training-free metrics are governed by the NTK trace norm.

HNAS (Shu et al., NeurIPS 2022, Theorem 1; its exact statement was not accessible, methods-spec
§4.5) bounds each metric by the trace norm ``M_trace = sqrt(tr Theta / B)`` with
architecture-independent constants: ``grad_norm <~ C1 M_trace``, ``snip <~ C2 M_trace``,
``|grasp| <~ C3 M_trace^2`` (synflow is given the exponent 1 here, an assumption). Across a sample
of NB201 architectures this measures, for each metric ``m`` (jaxnas' registered proxies, their own
conventions) against ``hnas_trace``:

* the Pearson correlation of ``log |m|`` with ``log M_trace`` (the headline), the Spearman
  correlation, and the fitted log-log line ``log |m| = a + b log M_trace``;
* the bound's constant ``C`` fitted as the largest ``|m| / M_trace^p`` on a random half of the
  architectures, and the fraction of the other half inside ``|m| <= C M_trace^p``.

Architectures where a metric or ``M_trace`` is 0 or not finite (degenerate cells) are left out of
the logs and counted.
"""

from __future__ import annotations

import numpy as np

from jaxnas import engine
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import list_proxies
from jaxnas import benchmarks
from jaxnas.theory import common

EXPONENTS = {"grad_norm": 1, "snip": 1, "grasp": 2, "synflow": 1}


def hnas_scores(cfg, archs) -> dict:
  """``hnas_trace`` and the compared metrics via :func:`jaxnas.engine.score`."""
  missing = [m for m in cfg.hnas_metrics if m not in list_proxies()]
  if missing:
    raise JaxnasInputError(f"proxies {missing} are not registered; registered: {list_proxies()}")
  batch = common.real_batch(cfg.batch, cfg.resolution, cfg.seed)
  return engine.score("nb201", archs, ("hnas_trace",) + tuple(cfg.hnas_metrics), batch,
                      seed=cfg.seed, config=cfg.net(), chunk_size=max(len(archs), 1))


def hnas_bounds(cfg, scores) -> dict:
  """Correlations, fitted lines and bound constants for each metric."""
  m_trace = scores["hnas_trace"]
  rng = np.random.default_rng(cfg.seed + 3)
  per_metric, pearsons = {}, {}
  for name in cfg.hnas_metrics:
    m = np.abs(scores[name])
    ok = np.isfinite(m) & np.isfinite(m_trace) & (m > 0) & (m_trace > 0)
    lx, ly = np.log(m_trace[ok]), np.log(m[ok])
    r = benchmarks.pearson(lx, ly)
    pearsons[name] = r
    entry = {"pearson_log_log": r, "spearman": benchmarks.spearman(scores[name], m_trace),
             "n_used": int(ok.sum()), "n_left_out": int((~ok).sum()),
             "n_negative": int(np.sum(scores[name] < 0))}
    if ok.sum() >= 4:
      slope, intercept = np.polyfit(lx, ly, 1)
      p = EXPONENTS.get(name, 1)
      log_c = ly - p * lx
      perm = rng.permutation(len(log_c))
      calib, held = perm[: len(perm) // 2], perm[len(perm) // 2:]
      c_fit = float(np.max(log_c[calib]))
      entry.update({"fit_slope": float(slope), "fit_intercept": float(intercept),
                    "bound_exponent": p, "bound_constant": float(np.exp(c_fit)),
                    "fraction_inside_bound_heldout": float(np.mean(log_c[held] <= c_fit)),
                    "constant_spread_log10": float((np.max(log_c) - np.min(log_c)) / np.log(10))})
    per_metric[name] = entry
  return {"hnas_loglog_pearson": pearsons, "metrics": per_metric,
          "m_trace_range": [float(np.nanmin(m_trace)), float(np.nanmax(m_trace))]}
