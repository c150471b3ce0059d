"""One figure per theory check (matplotlib, Agg backend, imported only here)."""

from __future__ import annotations

import numpy as np


def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _save(fig, path):
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  _plt().close(fig)


def nt_implementations(res, path):
  """Bar chart (log scale) of each NTK implementation's max relative difference to own ``J J^T``, one
  bar per ``bn/build`` row of ``res['by_mode']``; saved to ``path``.
  """
  plt = _plt()
  rows = res["by_mode"]
  names = sorted({k for r in rows.values() for k in r})
  fig, ax = plt.subplots(figsize=(7, 3.2))
  width = 0.8 / len(rows)
  for i, (mode, r) in enumerate(rows.items()):
    vals = [max(r.get(n, np.nan), 1e-12) for n in names]
    ax.bar(np.arange(len(names)) + i * width, vals, width, label=mode)
  ax.set_yscale("log")
  ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, fontsize=7)
  ax.set_ylabel("max |K - K_own| / max |K_own|")
  ax.set_title("NTK implementations vs per-sample J J^T (0 shown as 1e-12)", fontsize=9)
  ax.legend(fontsize=7)
  _save(fig, path)


def identities(res, path):
  """NASI Eq. 9-11 from ``res`` (:func:`jaxnas.theory.identities.trace_and_jensen`): own vs
  kernel trace (Eq. 9), Lipschitz ratios (Eq. 10), Jensen and chain ratios (Eq. 11);
  saved to ``path``.
  """
  plt = _plt()
  raw = res["_raw"]
  fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
  pts = raw["points"]
  for bn, mk in (("batch", "o"), ("running", "s")):
    sel = [p for p in pts if p["bn"] == bn]
    axes[0].scatter([p["trace_own"] for p in sel], [p["trace_nt"] for p in sel], marker=mk,
                    label=f"bn={bn}")
  lim = [min(p["trace_own"] for p in pts), max(p["trace_own"] for p in pts)]
  axes[0].plot(lim, lim, "k--", lw=0.8)
  axes[0].set(xscale="log", yscale="log", xlabel="sum_x ||J_x||_F^2 (own)",
              ylabel="tr Theta (empirical NTK)")
  axes[0].set_title(f"Eq. 9, max rel err {res['trace_identity_max_rel_err']:.1e}", fontsize=9)
  axes[0].legend(fontsize=7)
  axes[1].hist(raw["lipschitz_ratio"], bins=30)
  axes[1].axvline(1.0, color="r")
  axes[1].set(xlabel="||grad L_x|| / (sqrt2 ||J_x||_F)")
  axes[1].set_title(f"Eq. 10 holds for {res['lipschitz_holds_fraction']:.0%}", fontsize=9)
  axes[2].hist(raw["jensen_ratio"], bins=20, label="b||mean g||^2 / sum ||g||^2")
  axes[2].hist(raw["chain_ratio"], bins=20, alpha=0.6, label="b nasi / (2 tr Theta)")
  axes[2].axvline(1.0, color="r")
  axes[2].set_title(f"Eq. 11 per batch holds for {res['jensen_holds_fraction']:.0%}", fontsize=9)
  axes[2].legend(fontsize=7)
  _save(fig, path)


def linearized(res, path):
  """NASI Eq. 4's predicted loss (lines) vs GD on the linearised network (dots) for each run of
  ``res`` (:func:`jaxnas.theory.linearized.linearized_gd`), log scale; saved to ``path``.
  """
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6, 3.6))
  for r in res["runs"]:
    t = np.arange(len(r["gd"]))
    line, = ax.plot(t, r["predicted"], lw=1, label=f"{r['bn']}: Eq. 4")
    ax.plot(t[::max(1, len(t) // 25)], np.asarray(r["gd"])[::max(1, len(t) // 25)], "o", ms=3,
            color=line.get_color())
  ax.set(yscale="log", xlabel="step t", ylabel="m^-1 ||f_lin(X) - Y||^2")
  ax.set_title(f"NASI Eq. 4 (lines) vs GD on the linearised net (dots); max rel err "
               f"{res['linearized_gd_max_rel_err']:.1e}", fontsize=8)
  ax.legend(fontsize=6)
  _save(fig, path)


def width(res, path):
  """Relative Frobenius error of the empirical to the analytic NTK vs width ``C`` for each cell of
  ``res`` (:func:`jaxnas.theory.width.width_convergence`), log-log with a ``C^-1/2`` reference line;
  saved to ``path``.
  """
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6, 3.6))
  for c in res["cells"]:
    w = np.asarray(c["widths"])
    ax.plot(w, c["rel_frobenius_err"], "o-", label=f"slope {c['slope']:.2f}: {c['cell'][:40]}")
  w = np.asarray(res["cells"][0]["widths"], float)
  ref = res["cells"][0]["rel_frobenius_err"][0] * (w / w[0]) ** -0.5
  ax.plot(w, ref, "k--", lw=0.8, label="C^-1/2")
  ax.set(xscale="log", yscale="log", xlabel="width C",
         ylabel="||Theta_C - Theta_inf||_F / ||Theta_inf||_F")
  ax.legend(fontsize=6)
  ax.set_title(f"empirical -> analytic NTK; mean slope {res['width_convergence_slope']:.2f}",
               fontsize=9)
  _save(fig, path)


def agnostic(q, res, path):
  """Scatter plots of the per-architecture quantities ``q``: NASI vs its data-agnostic (Gaussian
  inputs) and label-agnostic (random labels) versions and vs the exact trace, with Spearman
  correlations; saved to ``path`` (``res`` is unused).
  """
  plt = _plt()
  pairs = [("nasi", "nasi_gaussian", "data-agnostic"),
           ("nasi", "nasi_random_labels", "label-agnostic"),
           ("nasi", "trace_batch", "estimate vs exact trace")]
  fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
  for ax, (a, b, title) in zip(axes, pairs):
    x, y = np.asarray(q[a]), np.asarray(q[b])
    ok = (x > 0) & (y > 0)
    ax.scatter(x[ok], y[ok], s=8)
    ax.set(xscale="log", yscale="log", xlabel=a, ylabel=b)
    from jaxnas.benchmarks import spearman
    ax.set_title(f"{title}: Spearman {spearman(x, y):.3f}", fontsize=9)
  _save(fig, path)


def accuracy(q, res, path):
  """A 2x4 grid: each NTK quantity of ``q`` (trace, condition number, lambda_min, NASI loss; batch
  and running BN) vs ``res['accuracy']`` (CIFAR-10 test, 200 epochs), with Spearman; saved to
  ``path``.
  """
  plt = _plt()
  acc = np.asarray(res["accuracy"])
  keys = ["trace_batch", "cond_batch", "lambda_min_batch", "nasi_loss_batch",
          "trace_running", "cond_running", "lambda_min_running", "nasi_loss_running"]
  fig, axes = plt.subplots(2, 4, figsize=(13, 6))
  from jaxnas.benchmarks import spearman
  for ax, k in zip(axes.ravel(), keys):
    v = np.asarray(q[k])
    ok = v > 0
    ax.scatter(v[ok], acc[ok], s=6)
    ax.set(xscale="log", xlabel=k, ylabel="CIFAR-10 test acc (200 ep.)")
    ax.set_title(f"Spearman {spearman(v, acc):.3f}", fontsize=9)
  _save(fig, path)


def hnas(scores, res, path):
  """One panel per metric of ``res['metrics']``: ``|scores[metric]|`` vs ``scores['hnas_trace']``
  (log-log), with the fitted line and the bound ``C M^e`` where fitted; saved to ``path``.
  """
  plt = _plt()
  names = list(res["metrics"])
  fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 3.3), squeeze=False)
  mt = np.asarray(scores["hnas_trace"])
  for ax, name in zip(axes.ravel(), names):
    m = np.abs(np.asarray(scores[name]))
    ok = (m > 0) & (mt > 0) & np.isfinite(m)
    ax.scatter(mt[ok], m[ok], s=6)
    e = res["metrics"][name]
    if "fit_slope" in e:
      xs = np.linspace(np.log(mt[ok].min()), np.log(mt[ok].max()), 20)
      ax.plot(np.exp(xs), np.exp(e["fit_intercept"] + e["fit_slope"] * xs), "r-", lw=1,
              label=f"fit slope {e['fit_slope']:.2f}")
      ax.plot(np.exp(xs), e["bound_constant"] * np.exp(xs) ** e["bound_exponent"], "k--", lw=0.8,
              label=f"C M^{e['bound_exponent']}")
      ax.legend(fontsize=6)
    ax.set(xscale="log", yscale="log", xlabel="M_trace (hnas_trace)", ylabel=f"|{name}|")
    ax.set_title(f"log-log Pearson {e['pearson_log_log']:.3f}", fontsize=9)
  _save(fig, path)
