"""NB201 search evaluation: every search method over several seeds, beside the papers' numbers.

For each row (a method and its options) and seed, runs ``jaxnas.search.search`` in this process and
records the chosen architecture, its benchmark test accuracy after 200 epochs on CIFAR-10 and
CIFAR-100 (``cifar10_test200``, ``cifar100_test200``; never the 12-epoch table) and the search's
wall time on this machine. The first seed of a row pays JAX compilation; later seeds reuse the
compiled functions, so both the first (cold) and the mean time are reported.

Writes ``experiments/results/nb201_search.json`` (every seed, rewritten after each one, so a long
run can be resumed with ``--resume``) and ``nb201_search.md`` (the table).

Usage::

  python experiments/nb201_search.py                       # every row, 10 seeds
  python experiments/nb201_search.py --rows freedarts,nasi --seeds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from jaxnas import benchmarks, search
from jaxnas.spaces import nb201

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
HNAS_SCORES = os.path.join(RESULTS, "nb201_hnas_metrics.csv")
#: How HNAS_SCORES is made (the 'hnas' row needs it; about 10 min on this CPU).
HNAS_SCORES_COMMAND = ("jaxnas score --space nb201 --proxies hnas_trace,hnas_cond --sample 1000 "
                       "--seed 0 --config C=8,N=1 --resolution 16 --batch-size 32 --out "
                       "experiments/results/nb201_hnas_metrics.csv")
HNAS_FULL_SCORES = os.path.join(RESULTS, "nb201_hnas_metrics_full.csv")
#: The same 1000 architectures at the benchmark's size (the 'hnas-full' row): two shards, one per
#: core, then merged (about 1.5 h on this 2-core CPU).
HNAS_FULL_SCORES_COMMAND = (
    "for s in 0 1; do jaxnas score --space nb201 --proxies hnas_trace,hnas_cond --sample 1000 "
    "--seed 0 --batch-size 64 --chunk-size 8 --shard $s/2 --resume "
    "--out experiments/results/nb201_hnas_metrics_full.shard$s.csv & done; wait; "
    "jaxnas score --out experiments/results/nb201_hnas_metrics_full.csv --merge "
    "experiments/results/nb201_hnas_metrics_full.shard0.csv,"
    "experiments/results/nb201_hnas_metrics_full.shard1.csv")

#: label -> (method, options, paper C10 (mean, std or None, source), note)
ROWS = {
    "freedarts": ("freedarts", {}, None,
                  "SynFlow-on-alpha one-shot, full supernet (C=16, N=5)"),
    "freedarts-snip": ("freedarts", {"criterion": "snip"}, (92.24, None, "FreeDARTS SNIP nb"),
                       "one labelled batch of 64"),
    "freedarts-grasp": ("freedarts", {"criterion": "grasp"}, (93.53, None, "FreeDARTS GraSP nb"),
                        "one labelled batch of 64, one Adam step"),
    "freenas": ("freenas", {}, None, "FreeFlow, iterative pruning (3 rounds + final)"),
    "nasi": ("nasi", {}, (93.55, 0.10, "RoBoT Table 2"),
             "reduced supernet C=8, N=1; T=20 steps of b=32"),
    "nasi-full": ("nasi", {"supernet": {"C": 16, "N": 5}}, (93.55, 0.10, "RoBoT Table 2"),
                  "full supernet C=16, N=5 (the benchmark's size); T=20 steps of b=32"),
    "nasi-full-max": ("nasi", {"supernet": {"C": 16, "N": 5}, "nu_mode": "fixed", "nu": 1e9},
                      (93.55, 0.10, "RoBoT Table 2"),
                      "as nasi-full with the penalty off (nu = 1e9): pure trace maximisation"),
    "nasi-full-soft": ("nasi", {"supernet": {"C": 16, "N": 5}, "hard": False},
                       (93.55, 0.10, "RoBoT Table 2"),
                       "as nasi-full with soft Gumbel-softmax samples (hard=False)"),
    "tenas": ("tenas", {}, (93.90, 0.47, "RoBoT Table 2"),
              "kappa on C=3,N=1 (72 images), regions on C=1,N=1 (1000 crops), 3 repeats"),
    "tenas-small": ("tenas", {"ntk_batch": 16, "ntk_chunk": 16, "resolution": 16, "repeats": 1,
                              "region_samples": 500},
                    (93.90, 0.47, "RoBoT Table 2"),
                    "kappa on 16 images at 16x16 (paper 72 at 32x32), 500 crops, 1 repeat (paper 3)"),
    "hnas": ("hnas", {"scores_file": HNAS_SCORES, "pool": 128}, (94.04, 0.21, "RoBoT Table 2"),
             "M_trace, kappa precomputed at C=8, N=1, 16x16, batch 32 on 1000 uniformly drawn "
             "archs (command in nb201_search.py); pool 128 per query (the paper's 2000 of 15,625 "
             "= 12.8 %); 20 queries of 12-epoch val accuracy"),
    "hnas-full": ("hnas", {"scores_file": HNAS_FULL_SCORES, "pool": 128},
                  (94.04, 0.21, "RoBoT Table 2"),
                  "as hnas with M_trace, kappa at full size (C=16, N=5, 32x32, batch 64, the "
                  "paper's setting; command in nb201_search.py)"),
    "random-epsilon": ("random", {"proxy": "epsilon", "n": 100}, (93.86, None, "epsinas N=1000"),
                       "N=100 (paper N=1000)"),
    "random-nwot": ("random", {"proxy": "nwot", "n": 100}, (92.96, 0.81, "NASWOT N=1000"),
                    "N=100 (paper N=1000)"),
    "random-synflow": ("random", {"proxy": "synflow", "n": 100}, None,
                       "N=100 uniformly drawn, best SynFlow"),
    "rea-synflow": ("rea", {"proxy": "synflow", "n": 100, "population": 20, "sample_size": 5},
                    None, "100 evaluations, population 20, tournament 5, SynFlow fitness"),
    "rea-ensemble": ("rea", {"proxy": "ensemble", "n": 100, "population": 20, "sample_size": 5},
                     None, "as rea-synflow, fitness: the ensemble proxy (its shipped members)"),
    "hnas-small": ("hnas", {"config": {"C": 8, "N": 1}, "resolution": 16, "batch_size": 32,
                            "pool": 100, "queries": 10},
                   (94.04, 0.21, "RoBoT Table 2"),
                   "metrics on demand at C=8, N=1, 16x16, batch 32; pool 100 per query, 10 queries"),
    # Cascades (jaxnas.search.cascade): cheapest proxy first, each stage keeping its best few.
    "cascade": ("cascade", {}, None,
                "zero-query: whole space by params (keep 300, 465 with ties) -> SynFlow at 8x8 "
                "(keep 10) -> Zen-score (keep 1)"),
    "cascade-p100": ("cascade", {"stages": "params:100,synflow@8:10,zen:1"}, None,
                     "as cascade, params keeps 100 (216 with ties)"),
    "cascade-p1000": ("cascade", {"stages": "params:1000,synflow@8:10,zen:1"}, None,
                      "as cascade, params keeps 1000 (1005 with ties)"),
    "cascade-synflow": ("cascade", {"stages": "params:300,synflow@8:1"}, None,
                        "as cascade without the Zen stage: best SynFlow at 8x8"),
    "cascade-n3000": ("cascade", {"n": 3000, "stages": "params:100,synflow@8:10,zen:1"}, None,
                      "3,000 uniform draws instead of the whole space; params keeps 100"),
    "cascade-hybrid": ("cascade", {"stages": "params:300,synflow@8:20", "queries": 20},
                       (94.36, 0.0, "RoBoT, 20 queries"),
                       "hybrid: as cascade-synflow keeping 20, then 20 queries of 12-epoch val "
                       "accuracy; best observed"),
    "cascade-hybrid-zen": ("cascade", {"stages": "params:300,synflow@8:50,zen:20", "queries": 20},
                           (94.36, 0.0, "RoBoT, 20 queries"),
                           "hybrid: SynFlow keeps 50, Zen keeps 20, then 20 queries of 12-epoch "
                           "val accuracy"),
}
OPTIMUM = 94.37


def run_row(label, seeds, done, log):
  method, options, _, _ = ROWS[label]
  out = done.get(label, [])
  have = {r["seed"] for r in out}
  for seed in seeds:
    if seed in have:
      continue
    load0, cpu0 = os.getloadavg()[0], time.process_time()
    res = search.search(method, "nb201", seed=seed, **options)
    idx = int(nb201.to_index(res.arch))
    rec = dict(seed=seed, arch_str=res.arch_str, index=idx, seconds=res.seconds,
               cpu_seconds=time.process_time() - cpu0, load_before=load0,
               load_after=os.getloadavg()[0],
               cifar10_test200=float(benchmarks.accuracy(idx, "cifar10_test200")),
               cifar100_test200=float(benchmarks.accuracy(idx, "cifar100_test200")),
               imagenet16_val200=float(benchmarks.accuracy(idx, "imagenet16_val200")),
               queries=int(res.queries),
               extra={k: v for k, v in res.extra.items() if not isinstance(v, list)})
    out.append(rec)
    log(f"{label:<16} seed {seed}: {rec['cifar10_test200']:.2f} / {rec['cifar100_test200']:.2f} "
        f"{res.seconds:7.1f} s  {res.arch_str}")
    done[label] = out
    yield


def summarise(done):
  rows = []
  for label, recs in done.items():
    if not recs or label not in ROWS:
      continue
    recs = sorted(recs, key=lambda r: r["seed"])
    c10 = np.array([r["cifar10_test200"] for r in recs])
    c100 = np.array([r["cifar100_test200"] for r in recs])
    sec = np.array([r["seconds"] for r in recs])
    cpu = np.array([r.get("cpu_seconds", np.nan) for r in recs])
    load = np.array([r.get("load_before", np.nan) for r in recs])
    paper = ROWS[label][2]
    # ImageNet16-120 validation accuracy is bundled for the 500-subset only (NaN elsewhere);
    # records written before these columns existed are completed from their benchmark index
    in16 = np.array([r.get("imagenet16_val200",
                           benchmarks.accuracy(r["index"], "imagenet16_val200")) for r in recs],
                    np.float64)
    in16 = in16[np.isfinite(in16)]
    queries = {r.get("queries", _queries_of(label)) for r in recs}
    rows.append(dict(label=label, method=ROWS[label][0], options=ROWS[label][1],
                     note=ROWS[label][3], seeds=len(recs), c10_mean=c10.mean(), c10_std=c10.std(),
                     c100_mean=c100.mean(), c100_std=c100.std(), seconds_first=sec[0],
                     seconds_mean=sec.mean(), cpu_seconds_mean=float(np.nanmean(cpu)),
                     load_mean=float(np.nanmean(load)),
                     distinct_archs=len({r["index"] for r in recs}),
                     in16_mean=float(in16.mean()) if len(in16) else None, in16_n=len(in16),
                     queries=(queries.pop() if len(queries) == 1 else None),
                     paper=paper))
  return rows


def _queries_of(label) -> int:
  """Benchmark lookups of a row's method, for records from before ``queries`` was stored."""
  method, options = ROWS[label][0], ROWS[label][1]
  if method == "hnas":
    return int(options.get("queries", dict(search.get_method("hnas").defaults)["queries"]))
  return int(options.get("queries", 0))


def _in16(r) -> str:
  if r.get("in16_mean") is None:
    return "-" if "in16_n" in r else ""
  return f"{r['in16_mean']:.2f} ({r['in16_n']})"


def table(rows) -> str:
  head = ("| method | seeds | C10 test (%) | C100 test (%) | IN16 val (%, seeds in the 500-subset) "
          "| queries | search s (first / mean) | CPU s (mean) | load | paper C10 | setting |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")
  lines = [head]
  for r in rows:
    p = r["paper"]
    paper = "" if p is None else (f"{p[0]:.2f}" + (f" +- {p[1]:.2f}" if p[1] is not None else "")
                                  + f" ({p[2]})")
    lines.append(f"| {r['label']} | {r['seeds']} | {r['c10_mean']:.2f} +- {r['c10_std']:.2f} | "
                 f"{r['c100_mean']:.2f} +- {r['c100_std']:.2f} | {_in16(r)} | "
                 f"{'' if r.get('queries') is None else r['queries']} | {r['seconds_first']:.1f} / "
                 f"{r['seconds_mean']:.1f} | {r['cpu_seconds_mean']:.1f} | {r['load_mean']:.1f} | "
                 f"{paper} | {r['note']} |")
  lines.append(f"| optimum | | {OPTIMUM:.2f} | 73.51 | | | | | | 94.37 | best of the 15,625 cells |")
  return "\n".join(lines)


def curve(rows) -> str:
  """Zero-query rows (no benchmark lookup) ordered by mean search time: accuracy against time."""
  pts = sorted((r for r in rows if r.get("queries") == 0), key=lambda r: r["seconds_mean"])
  lines = ["| search s (mean) | C10 test (%) | method |", "|---|---|---|"]
  lines += [f"| {r['seconds_mean']:.1f} | {r['c10_mean']:.2f} +- {r['c10_std']:.2f} | "
            f"{r['label']} |" for r in pts]
  return "\n".join(lines)


def plot_curve(rows, path) -> None:
  """The zero-query rows as points (mean seconds, mean +- std C10 accuracy) in a PNG."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  pts = [r for r in rows if r.get("queries") == 0]
  fig, ax = plt.subplots(figsize=(7, 4.5))
  low = 92.5   # rows below are drawn on the bottom edge (triangle) with their mean in the label
  for k, r in enumerate(sorted(pts, key=lambda r: r["seconds_mean"])):
    casc = r["method"] == "cascade"
    x, y = r["seconds_mean"], r["c10_mean"]
    if y < low:
      ax.plot(x, low + 0.03, "v", color="C7")
      label = f"{r['label']} ({y:.1f})"
      y = low + 0.03
    else:
      ax.errorbar(x, y, yerr=r["c10_std"], fmt="o" if casc else "s",
                  color="C0" if casc else "C7", capsize=3)
      label = r["label"]
    ax.annotate(label, (x, y), fontsize=7, xytext=(4, 4 if k % 2 else -9),
                textcoords="offset points")
  ax.set_ylim(low, 94.6)
  ax.axhline(94.0, color="C3", lw=0.8, ls="--", label="goal 94.0 %")
  ax.axhline(OPTIMUM, color="k", lw=0.8, ls=":", label=f"optimum {OPTIMUM}")
  ax.axvline(60, color="C3", lw=0.8, ls="--")
  ax.set_xscale("log")
  ax.set_xlabel("search wall seconds (mean over seeds, this 2-core CPU)")
  ax.set_ylabel("CIFAR-10 test accuracy (%) of the found cell")
  ax.set_title("NB201 zero-query search: accuracy against search time")
  ax.legend(loc="upper left", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--rows", default=",".join(ROWS))
  ap.add_argument("--seeds", type=int, default=10)
  ap.add_argument("--resume", action="store_true", help="keep seeds already in the JSON")
  ap.add_argument("--out", default=os.path.join(RESULTS, "nb201_search"))
  args = ap.parse_args(argv)
  labels = [r for r in args.rows.split(",") if r]
  for r in labels:
    if r not in ROWS:
      ap.error(f"unknown row {r!r}; allowed: {', '.join(ROWS)}")
    if ROWS[r][1].get("scores_file") and not os.path.exists(ROWS[r][1]["scores_file"]):
      command = HNAS_FULL_SCORES_COMMAND if r == "hnas-full" else HNAS_SCORES_COMMAND
      ap.error(f"row {r!r} needs {ROWS[r][1]['scores_file']}; make it first with: {command}")
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  doc = {"rows": {}}
  if args.resume and os.path.exists(args.out + ".json"):
    with open(args.out + ".json") as f:
      doc = json.load(f)
  done = doc["rows"]
  doc["machine"] = dict(platform=platform.platform(), cpus=os.cpu_count(),
                        python=sys.version.split()[0])

  def log(msg):
    print(msg, flush=True)

  def save():
    doc["summary"] = summarise(done)
    tmp = args.out + ".json.tmp"
    with open(tmp, "w") as f:
      json.dump(doc, f, indent=1)
    os.replace(tmp, args.out + ".json")
    with open(args.out + ".md", "w") as f:
      f.write("NB201 search (CIFAR-10 / CIFAR-100 200-epoch test accuracy of the found cell, "
              "mean +- std over seeds; wall time on this machine)\n\n" + table(doc["summary"])
              + "\n\nAccuracy against search time (zero-query rows):\n\n"
              + curve(doc["summary"]) + "\n")

  for label in labels:
    t0 = time.perf_counter()
    for _ in run_row(label, range(args.seeds), done, log):
      save()
    log(f"{label}: {time.perf_counter() - t0:.0f} s")
  save()
  try:
    plot_curve(doc["summary"], args.out + "_curve.png")
  except ImportError:   # matplotlib is an optional extra
    print("matplotlib missing: no curve PNG", flush=True)
  print(table(doc["summary"]))


if __name__ == "__main__":
  main()
