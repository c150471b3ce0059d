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

from jaxnas._files import atomic
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


def _count_nulls(x) -> int:
  """Non-finite numbers in a JSON-ready object (written as ``null``)."""
  if isinstance(x, dict):
    return sum(_count_nulls(v) for v in x.values())
  if isinstance(x, list):
    return sum(_count_nulls(v) for v in x)
  return int(x is None)


def _write_json(path, obj):
  with atomic(path, "w", encoding="utf-8") as f:
    json.dump(obj, f, indent=1)


def parse_checks(text: str | None) -> tuple:
  """The checks named in ``text`` (comma-separated), in run order; all of :data:`CHECKS` when empty.

  Raises :class:`JaxnasInputError` on an unknown name.
  """
  if not text:
    return CHECKS
  chosen = tuple(t.strip() for t in text.split(",") if t.strip())
  bad = [c for c in chosen if c not in CHECKS]
  if bad or not chosen:
    raise JaxnasInputError(f"unknown theory check(s) {bad or text!r}; allowed: {', '.join(CHECKS)}")
  return tuple(c for c in CHECKS if c in chosen)


def run(cfg: TheoryConfig, out_dir: str, checks: Iterable[str] = CHECKS,
        log: Callable[[str], None] = print, resume: bool = False) -> dict:
  """Runs ``checks`` at the sizes of ``cfg``; writes ``out_dir/theory.json`` and the plots.

  The JSON is rewritten (atomically) after every check, with ``completed`` listing the checks
  done so far, so an interrupted run loses at most the check in progress. With ``resume=True``
  the checks already completed in an existing ``theory.json`` of the same configuration are kept
  and skipped; a file of another configuration raises :class:`JaxnasInputError`.

  Returns the JSON object. Headline keys are top level; details of each check under its name.
  """
  cfg = cfg.validate()
  checks = tuple(checks)
  if not os.path.isdir(out_dir):
    raise JaxnasInputError(f"output directory {out_dir!r} does not exist")
  previous = _previous(cfg, out_dir) if resume else None
  flag = bool(jax.config.read("jax_disable_most_optimizations"))
  jax.config.update("jax_disable_most_optimizations", bool(cfg.fast_compile) or flag)
  try:
    return _run(cfg, out_dir, checks, log, previous)
  finally:
    jax.config.update("jax_disable_most_optimizations", flag)


def _previous(cfg, out_dir):
  path = os.path.join(out_dir, "theory.json")
  if not os.path.exists(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      obj = json.load(f)
  except (OSError, ValueError) as e:
    raise JaxnasInputError(f"cannot resume from {path!r}: not a readable JSON file ({e})") from e
  if not isinstance(obj, dict) or obj.get("config") != _jsonable(dataclasses.asdict(cfg)):
    raise JaxnasInputError(
        f"cannot resume from {path!r}: it was written with another configuration "
        f"({obj.get('config', {}).get('name') if isinstance(obj, dict) else obj!r}); "
        "use another --out directory or delete the file")
  return obj


def _check_nt_implementations(cfg, archs, out_dir):
  r = identities.nt_implementations(cfg, archs)
  plots.nt_implementations(r, os.path.join(out_dir, PLOTS["nt_implementations"][0]))
  return {"nt_implementations_max_rel_diff": r["nt_implementations_max_rel_diff"]}, r


def _check_identities(cfg, archs, out_dir):
  r = identities.trace_and_jensen(cfg, archs)
  plots.identities(r, os.path.join(out_dir, PLOTS["identities"][0]))
  head = {k: r[k] for k in ("trace_identity_max_rel_err", "jensen_holds_fraction")}
  r = dict(r)
  r["points"] = r.pop("_raw")["points"]
  return head, r


def _check_linearized(cfg, archs, out_dir):
  r = linearized.linearized_gd(cfg, archs)
  plots.linearized(r, os.path.join(out_dir, PLOTS["linearized"][0]))
  return {"linearized_gd_max_rel_err": r["linearized_gd_max_rel_err"]}, r


def _check_width(cfg, archs, out_dir):
  del archs
  r = width.width_convergence(cfg)
  plots.width(r, os.path.join(out_dir, PLOTS["width"][0]))
  return {"width_convergence_slope": r["width_convergence_slope"]}, r


def _check_archs(cfg, archs, out_dir):
  q = archs_mod.arch_quantities(cfg, archs)
  r = archs_mod.agnostic_and_accuracy(cfg, archs, q)
  plots.agnostic(q, r, os.path.join(out_dir, PLOTS["archs"][0]))
  plots.accuracy(q, r, os.path.join(out_dir, PLOTS["archs"][1]))
  head = {k: r[k] for k in ("nasi_vs_exact_trace_spearman", "data_agnostic_spearman_gaussian",
                            "label_agnostic_spearman_random_labels", "ntk_vs_accuracy_spearman")}
  return head, {**r, "indices": common.nb201.to_index(archs),
                "per_arch": {k: v for k, v in q.items() if np.ndim(v) == 1}}


def _check_hnas(cfg, archs, out_dir):
  scores = hnas_bounds.hnas_scores(cfg, archs)
  r = hnas_bounds.hnas_bounds(cfg, scores)
  plots.hnas(scores, r, os.path.join(out_dir, PLOTS["hnas"][0]))
  return {"hnas_loglog_pearson": r["hnas_loglog_pearson"]}, {**r, "scores": scores}


_CHECK_FNS = {"nt_implementations": _check_nt_implementations, "identities": _check_identities,
              "linearized": _check_linearized, "width": _check_width, "archs": _check_archs,
              "hnas": _check_hnas}
_MESSAGES = {"nt_implementations": "neural-tangents implementations vs own J J^T",
             "identities": "NASI Eq. 9-11 (trace identity, Lipschitz, Jensen)",
             "linearized": "NASI Eq. 4 vs gradient descent on the linearised network",
             "width": "width convergence to the analytic stax NTK",
             "archs": "NTK quantities of {n} architectures",
             "hnas": "HNAS log-log relations over {n} architectures"}


def _run(cfg, out_dir, checks, log, previous) -> dict:
  t0 = time.perf_counter()
  archs = common.sample_archs(cfg.num_archs, cfg.seed)
  out = {"config": dataclasses.asdict(cfg), "checks": list(checks), "completed": [],
         "environment": {"jax": jax.__version__, "platform": platform.platform(),
                         "cpu_count": os.cpu_count()},
         "details": {}, "timings_s": {}}
  headlines = {}
  if previous is not None:
    for c in previous.get("completed", []):
      if c in checks:
        log(f"[theory] {c}: kept from the previous run")
        out["completed"].append(c)
        out["details"][c] = previous["details"][c]
        out["timings_s"][c] = previous["timings_s"][c]
        headlines.update({k: previous[k] for k in previous.get("headlines_by_check", {}).get(c, [])})
  out["headlines_by_check"] = {c: previous["headlines_by_check"][c] for c in out["completed"]}
  obj = None
  for c in checks:
    if c in out["completed"]:
      continue
    log(f"[theory] {_MESSAGES[c].format(n=len(archs))} ...")
    t = time.perf_counter()
    head, detail = _CHECK_FNS[c](cfg, archs, out_dir)
    out["timings_s"][c] = round(time.perf_counter() - t, 2)
    log(f"[theory] {c}: {out['timings_s'][c]} s")
    headlines.update(head)
    out["details"][c] = detail
    out["headlines_by_check"][c] = list(head)
    out["completed"].append(c)
    obj = _write(out, headlines, checks, out_dir, t0)
  if obj is None:
    obj = _write(out, headlines, checks, out_dir, t0)
  return obj


def _write(out, headlines, checks, out_dir, t0) -> dict:
  """Writes the JSON of the checks completed so far; returns it."""
  full = {**{k: out[k] for k in ("config", "checks", "completed", "environment")},
          **headlines, **{k: out[k] for k in ("details", "headlines_by_check")}}
  full["timings_s"] = {**out["timings_s"], "total": round(sum(out["timings_s"].values()), 2)}
  full["wall_s_this_run"] = round(time.perf_counter() - t0, 2)
  full["plots"] = [f for c in out["completed"] for f in PLOTS[c]]
  obj = _jsonable(full)
  obj["nonfinite_values"] = _count_nulls(obj["details"])
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
