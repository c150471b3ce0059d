"""DARTS space against ground truth: jaxnas' proxies on the 500 NAS-Bench-301 genotypes beside the
reference implementation's (NASLib) scores of the same genotypes.

Scores come from ``jaxnas score`` runs, one file per proxy (resumable), at the reference's network
size (C=32, 8 cells: parameter counts within 1.2 % of NASLib's ``params`` column)::

  for p in params flops l2_norm synflow jacob_cov grad_norm snip plain epe_nas grasp; do
    jaxnas score --space darts --archs-file ../shared/data/nb301_naslib500.csv --proxies $p \\
      --config C=32,L=8 --out experiments/results/darts_correlation/scores_$p.csv --resume
  done
  python experiments/darts_correlation.py

Spearman / Kendall against ``nb301_val`` (the NAS-Bench-301 surrogate's CIFAR-10 validation
accuracy, bundled as ``jaxnas.benchmarks.nb301``) for every proxy with a file, beside NASLib's
Spearman from the shared CSV's ``naslib_<proxy>`` columns on the same genotypes, and for
``params``/``flops`` the row-by-row agreement with NASLib's values. Writes ``table.md`` and
``table.json`` next to the scores.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os

import numpy as np

from jaxnas import benchmarks
from jaxnas.commands import _io

HERE = os.path.dirname(os.path.abspath(__file__))
DIR = os.path.join(HERE, "results", "darts_correlation")
CSV = os.path.join(HERE, "..", "..", "shared", "data", "nb301_naslib500.csv")


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--dir", default=DIR)
  ap.add_argument("--csv", default=CSV, help="the shared nb301_naslib500.csv (NASLib columns)")
  args = ap.parse_args(argv)
  with open(args.csv, newline="", encoding="utf-8") as f:
    ref = list(csv.DictReader(f))
  truth = np.array([float(r["val_accuracy"]) for r in ref])
  rows = []
  for path in sorted(glob.glob(os.path.join(args.dir, "scores_*.csv"))):
    arch_strs: dict = {}
    for proxy, (idx, s) in _io.read_scores(path, arch_strs).items():
      t = benchmarks.truth("nb301_val", idx, [arch_strs[int(i)] for i in idx])
      np.testing.assert_allclose(t, truth[idx], atol=1e-9)   # rows = the shared file's rows
      rep = benchmarks.rank_report(s, t)
      col = f"naslib_{proxy}"
      nl = nl_rows = None
      if col in ref[0]:
        v = np.array([float(ref[i][col]) for i in idx])
        nl = benchmarks.spearman(v, t)
        nl_rows = benchmarks.spearman(s, v)
      row = dict(proxy=proxy, n=int(len(idx)), spearman=rep["spearman"], kendall=rep["kendall"],
                 nonfinite=int(rep["n_nonfinite_scores"]), naslib_spearman=nl,
                 spearman_vs_naslib_scores=nl_rows)
      if proxy in ("params", "flops"):
        v = np.array([float(ref[i][col]) for i in idx])
        row["max_rel_diff_vs_naslib"] = float(np.max(np.abs(s - v) / v))   # both in millions
      rows.append(row)
  lines = ["| proxy | n | Spearman (jaxnas) | Kendall | NASLib Spearman, same genotypes | "
           "Spearman jaxnas vs NASLib scores | non-finite |", "|---|---|---|---|---|---|---|"]
  for r in rows:
    nl = "" if r["naslib_spearman"] is None else f"{r['naslib_spearman']:.3f}"
    vs = "" if r["spearman_vs_naslib_scores"] is None else f"{r['spearman_vs_naslib_scores']:.3f}"
    lines.append(f"| {r['proxy']} | {r['n']} | {r['spearman']:.3f} | {r['kendall']:.3f} | {nl} | "
                 f"{vs} | {r['nonfinite']} |")
  table = "\n".join(lines)
  with open(os.path.join(args.dir, "table.md"), "w") as f:
    f.write("DARTS space, 500 NAS-Bench-301 genotypes, truth nb301_val (C=32, 8 cells, "
            "batch 64 of bundled CIFAR-10)\n\n" + table + "\n")
  with open(os.path.join(args.dir, "table.json"), "w") as f:
    json.dump(rows, f, indent=1)
  print(table)


if __name__ == "__main__":
  main()
