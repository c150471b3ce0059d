"""Runs the theory checks and writes ``theory.json`` plus one plot per check."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from typing import Callable, Iterable

import jax
import numpy as np

from jaxnas.errors import JaxnasInputError
from jaxnas.theory import archs as archs_mod
from jaxnas.theory import common, hnas_bounds, identities, linearized, plots, width
from jaxnas.theory.config import TheoryConfig

#: Check families, in run order, and their plot files.
CHECKS = ("nt_implementations", "identities", "linearized", "width", "archs", "hnas")
PLOTS = {"nt_implementations": ("nt_implementations.png",),
         "identities": ("identities.png",), "linearized": ("linearized_gd.png",),
         "width": ("width_convergence.png",), "archs": ("agnostic.png", "accuracy.png"),
         "hnas": ("hnas_loglog.png",)}
#: Headline keys of the JSON (each the measured figure).
HEADLINES = ("nt_implementations_max_rel_diff", "trace_identity_max_rel_err",
             "jensen_holds_fraction", "nasi_vs_exact_trace_spearman",
             "data_agnostic_spearman_gaussian", "label_agnostic_spearman_random_labels",
             "hnas_loglog_pearson", "width_convergence_slope", "linearized_gd_max_rel_err",
             "ntk_vs_accuracy_spearman")


def _jsonable(x):
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, (np.ndarray, jax.Array)):
    return _jsonable(np.asarray(x).tolist())
  if isinstance(x, (np.floating, float)):
    return float(x) if np.isfinite(x) else None  # JSON has no NaN: null, counted in 'nonfinite'
  if isinstance(x, np.integer):
    return int(x)
  return x


def _count_nonfinite(x) -> int:
  if isinstance(x, dict):
    return sum(_count_nonfinite(v) for v in x.values())
  if isinstance(x, (list, tuple)):
    return sum(_count_nonfinite(v) for v in x)
  if isinstance(x, (float, np.floating)):
    return int(not np.isfinite(x))
  return 0


def _write_json(path, obj):
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(obj, f, indent=1)
  os.replace(tmp, path)


def parse_checks(text: str | None) -> tuple:
  if not text:
    return CHECKS
  chosen = tuple(t.strip() for t in text.split(",") if t.strip())
  bad = [c for c in chosen if c not in CHECKS]
  if bad or not chosen:
    raise JaxnasInputError(f"unknown theory check(s) {bad or text!r}; allowed: {', '.join(CHECKS)}")
  return tuple(c for c in CHECKS if c in chosen)


def run(cfg: TheoryConfig, out_dir: str, checks: Iterable[str] = CHECKS,
        log: Callable[[str], None] = print) -> dict:
  """Runs ``checks`` at the sizes of ``cfg``; writes ``out_dir/theory.json`` and the plots.

  Returns the JSON object. Headline keys are top level; details of each check under its name.
  """
  cfg = cfg.validate()
  checks = tuple(checks)
  if not os.path.isdir(out_dir):
    raise JaxnasInputError(f"output directory {out_dir!r} does not exist")
  previous = bool(jax.config.read("jax_disable_most_optimizations"))
  jax.config.update("jax_disable_most_optimizations", bool(cfg.fast_compile) or previous)
  try:
    return _run(cfg, out_dir, checks, log)
  finally:
    jax.config.update("jax_disable_most_optimizations", previous)


def _run(cfg, out_dir, checks, log) -> dict:
  timer = common.Timer()
  t0 = time.perf_counter()
  archs = common.sample_archs(cfg.num_archs, cfg.seed)
  out = {"config": dataclasses.asdict(cfg), "checks": list(checks),
         "environment": {"jax": jax.__version__, "platform": platform.platform(),
                         "cpu_count": os.cpu_count()}}
  details = {}

  def plot(name, fn, *args):
    for f in PLOTS[name][:1]:
      fn(*args, os.path.join(out_dir, f))

  if "nt_implementations" in checks:
    log("[theory] neural-tangents implementations vs own J J^T ...")
    with timer("nt_implementations"):
      r = identities.nt_implementations(cfg, archs)
    out["nt_implementations_max_rel_diff"] = r["nt_implementations_max_rel_diff"]
    details["nt_implementations"] = r
    plot("nt_implementations", plots.nt_implementations, r)
  if "identities" in checks:
    log("[theory] NASI Eq. 9-11 (trace identity, Lipschitz, Jensen) ...")
    with timer("identities"):
      r = identities.trace_and_jensen(cfg, archs)
    for k in ("trace_identity_max_rel_err", "jensen_holds_fraction"):
      out[k] = r[k]
    plot("identities", plots.identities, r)
    r = dict(r)
    raw = r.pop("_raw")
    r["points"] = raw["points"]
    details["identities"] = r
  if "linearized" in checks:
    log("[theory] NASI Eq. 4 vs gradient descent on the linearised network ...")
    with timer("linearized"):
      r = linearized.linearized_gd(cfg, archs)
    out["linearized_gd_max_rel_err"] = r["linearized_gd_max_rel_err"]
    details["linearized"] = r
    plot("linearized", plots.linearized, r)
  if "width" in checks:
    log("[theory] width convergence to the analytic stax NTK ...")
    with timer("width"):
      r = width.width_convergence(cfg)
    out["width_convergence_slope"] = r["width_convergence_slope"]
    details["width"] = r
    plot("width", plots.width, r)
  if "archs" in checks:
    log(f"[theory] NTK quantities of {len(archs)} architectures ...")
    with timer("archs"):
      q = archs_mod.arch_quantities(cfg, archs)
      r = archs_mod.agnostic_and_accuracy(cfg, archs, q)
    for k in ("nasi_vs_exact_trace_spearman", "data_agnostic_spearman_gaussian",
              "label_agnostic_spearman_random_labels", "ntk_vs_accuracy_spearman"):
      out[k] = r[k]
    plots.agnostic(q, r, os.path.join(out_dir, PLOTS["archs"][0]))
    plots.accuracy(q, r, os.path.join(out_dir, PLOTS["archs"][1]))
    details["archs"] = {**r, "indices": common.nb201.to_index(archs),
                        "per_arch": {k: v for k, v in q.items() if np.ndim(v) == 1}}
  if "hnas" in checks:
    log(f"[theory] HNAS log-log relations over {len(archs)} architectures ...")
    with timer("hnas"):
      scores = hnas_bounds.hnas_scores(cfg, archs)
      r = hnas_bounds.hnas_bounds(cfg, scores)
    out["hnas_loglog_pearson"] = r["hnas_loglog_pearson"]
    details["hnas"] = {**r, "scores": scores}
    plot("hnas", plots.hnas, scores, r)
  out["details"] = details
  out["timings_s"] = {**timer.seconds, "total": round(time.perf_counter() - t0, 2)}
  out["plots"] = [f for c in checks for f in PLOTS[c]]
  out["nonfinite_values"] = _count_nonfinite(details)
  obj = _jsonable(out)
  _write_json(os.path.join(out_dir, "theory.json"), obj)
  return obj


def summary(obj: dict) -> str:
  """The headline figures as text lines."""
  lines = []
  for k in HEADLINES:
    if k not in obj:
      continue
    v = obj[k]
    if isinstance(v, dict):
      lines.append(f"{k}:")
      for kk, vv in v.items():
        if isinstance(vv, dict):
          lines.append(f"  {kk}: " + ", ".join(
              f"{a}={b:.3f}" if isinstance(b, float) else f"{a}={b}" for a, b in vv.items()))
        else:
          lines.append(f"  {kk}: {vv:.4g}" if isinstance(vv, float) else f"  {kk}: {vv}")
    else:
      lines.append(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
  lines.append("timings (s): " + ", ".join(f"{k} {v}" for k, v in obj["timings_s"].items()))
  return "\n".join(lines)
