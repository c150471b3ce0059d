"""A space without a global index against its ground truth: jaxnas' proxies on the shared files'
architectures beside the reference implementation's (NASLib) scores of the same architectures.

* ``--space darts``: 500 NAS-Bench-301 genotypes (``nb301_naslib500.csv``), truth ``nb301_val``
  (the surrogate's CIFAR-10 validation accuracy), network C=32, 8 cells (parameter counts within
  1.2 % of NASLib's ``params`` column), batch 32 for the proxies the CSV has reference scores of
  (NASLib's batch there, see :data:`NASLIB_BATCH`), 64 for the others; the batch-64 files of
  NASLib's proxies, scored before that was known, are kept in ``darts_correlation/batch64/``.
* ``--space nb101``: 300 NAS-Bench-101 rows (``nb101_naslib300.csv``, 190 distinct pruned cells),
  truth ``nb101_val`` (one random repeat's validation accuracy at 108 epochs, averaged over rows of
  the same cell), the benchmark network (128 stem channels, 3 stacks of 3 cells), batch 32 for the
  proxies the CSV has reference scores of, as they were computed (methods-spec §13.0 F5); other
  proxies their own protocol's minibatch (:data:`NASLIB_BATCH`).

Scores come from ``jaxnas score`` runs, one file per proxy or per group of proxies scored in one
pass (``grad_norm``, ``snip`` and ``plain`` share one gradient), resumable. ``--score`` runs them:
every proxy the space supports that has no complete file yet, cheapest first (:data:`ORDER`), each
``jaxnas score ... --resume`` in its own process, then writes the table; stop it any time and run
it again to continue (``--dry-run`` prints the commands, ``--only`` restricts the proxies)::

  python experiments/space_correlation.py --space darts --score     # ~hours per proxy on a CPU
  python experiments/space_correlation.py --space nb101 --score
  python experiments/space_correlation.py --space darts              # the table from the files

One such command, as ``--score`` runs it::

  jaxnas score --space darts --archs-file ../shared/data/nb301_naslib500.csv \
    --proxies grad_norm,snip,plain --config C=32,L=8 --resume \
    --out experiments/results/darts_correlation/scores_grad_norm+snip+plain.csv

Spearman (with its 95 % percentile-bootstrap interval over the rows, fixed seed) and
Kendall against the truth for every proxy with a file, beside NASLib's Spearman from the shared
CSV's ``naslib_<proxy>`` columns on the same rows, the paired-bootstrap 95 % interval of the
difference of the two Spearmans (the same resamples for both: an interval excluding 0 is a gap the
500 (DARTS) or 300 (NB101) shared architectures do not explain by chance), the rank agreement of the two
implementations' scores row by row, and for ``params``/``flops`` the largest relative difference
from NASLib's values. Writes ``table.md`` and ``table.json`` next to the scores.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
from typing import Optional

import numpy as np

from jaxnas import benchmarks
from jaxnas.commands import _io
from jaxnas.proxies import epsilon, get_proxy

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data")
#: space -> (shared CSV, truth metric, results folder, what the table's title says)
SETUPS = {
    "darts": ("nb301_naslib500.csv", "nb301_val", "darts_correlation",
              "DARTS space, 500 NAS-Bench-301 genotypes, truth nb301_val (C=32, 8 cells, bundled "
              "CIFAR-10, batch per row)"),
    "nb101": ("nb101_naslib300.csv", "nb101_val", "nb101_correlation",
              "NAS-Bench-101, 300 rows (190 distinct cells), truth nb101_val (benchmark network, "
              "batch 32 of bundled CIFAR-10)"),
}


def correlation_rows(score_dir: str, ref: list, metric: str) -> list:
  """One dict per ``scores_<proxy>.csv`` in ``score_dir``: its rank report against ``metric``
  and the NASLib comparison from the shared CSV rows ``ref`` (row ``i`` = output index ``i``)."""
  rows = []
  paths = sorted(glob.glob(os.path.join(score_dir, "scores_*.csv")))
  # an interrupted run's committed rows (``--resume`` continues it) count too, marked partial
  paths += sorted(p for p in glob.glob(os.path.join(score_dir, "scores_*.csv.partial"))
                  if p[:-len(".partial")] not in paths)
  best: dict = {}   # proxy -> (complete, rows, path, idx, scores, arch_strs): one file each
  for path in paths:
    arch_strs: dict = {}
    with open(path, encoding="utf-8") as f:
      if path.endswith(".partial") and sum(1 for _ in f) < 2:
        continue                    # a run that has not committed its first chunk yet
    for proxy, (idx, s) in _io.read_scores(path, arch_strs).items():
      key = (not path.endswith(".partial"), len(idx))   # a proxy in two files (alone and in a
      if proxy not in best or key > best[proxy][:2]:      # joint pass): the complete or longer
        best[proxy] = (*key, path, idx, s, arch_strs)
  for proxy0 in sorted(best):
    _, _, path, idx, s, arch_strs = best[proxy0]
    proxy = proxy0 + (" (partial)" if path.endswith(".partial") else "")
    t = benchmarks.truth(metric, idx, [arch_strs[int(i)] for i in idx])
    col = f"naslib_{proxy.split()[0]}"
    v = np.array([float(ref[i][col]) for i in idx]) if col in ref[0] else None
    row = rank_row(proxy, s, t, v, **cost(path, proxy.split()[0], len(idx)))
    if proxy in ("params", "flops") and v is not None:
      row["max_rel_diff_vs_naslib"] = float(np.max(np.abs(s - v) / v))   # both in millions
    rows.append(row)
    if proxy.split()[0] == "epsilon":   # epsinas leaves undefined scores out: its protocol too
      keep = s != epsilon.UNDEFINED
      rows.append(rank_row(f"{proxy} (defined only)", s[keep], t[keep]))
  return rows + ensemble_rows(score_dir, metric) + pooled_rows(score_dir, metric)


def rank_row(proxy: str, s, t, naslib=None, **extra) -> dict:
  """One table row: ``proxy``'s scores ``s`` against the truth ``t`` (Spearman with its 95 %
  bootstrap interval, Kendall) and, given NASLib's scores ``naslib`` of the same rows, NASLib's
  Spearman, the two implementations' agreement and the paired bootstrap interval of the
  difference of their Spearmans (:func:`benchmarks.spearman_interval`, resampling rows: NB101's
  300 rows are independent draws of raw specs, of which 34 prune to the same input-to-output
  cell; resampling rows models another such draw)."""
  rep = benchmarks.rank_report(s, t)
  iv = benchmarks.spearman_interval(s, t, naslib)
  row = dict(proxy=proxy, n=int(len(s)), spearman=rep["spearman"], kendall=rep["kendall"],
             spearman_ci=[iv["lo"], iv["hi"]], nonfinite=int(rep["n_nonfinite_scores"]),
             naslib_spearman=None, spearman_vs_naslib_scores=None)
  if naslib is not None:
    row.update(naslib_spearman=benchmarks.spearman(naslib, t),
               spearman_vs_naslib_scores=benchmarks.spearman(s, naslib),
               diff_vs_naslib_ci=[iv["diff_lo"], iv["diff_hi"]])
  return {**row, **extra}


def pooled_rows(score_dir: str, metric: str) -> list:
  """Every registered pool-relative score (``aznas``, ``ensemble_v2``, ...) whose components all
  have complete score files here, ranked over the rows they share (as fitted or defined on
  NB201: nothing is refitted for this space)."""
  from jaxnas.proxies import get_pooled, with_pooled
  raw, arch_strs = {}, {}
  for path in sorted(glob.glob(os.path.join(score_dir, "scores_*.csv"))):
    raw.update(_io.read_scores(path, arch_strs))
  rows = []
  for name, (idx, s) in sorted(with_pooled(raw).items()):
    if name in raw:
      continue
    t = benchmarks.truth(metric, idx, [arch_strs[int(i)] for i in idx])
    comps = "+".join(get_pooled(name).components)
    rows.append(rank_row(f"{name} (pool of {len(idx)}: {comps})",
                         s if get_pooled(name).higher_is_better else -s, t))
  return rows


def _sidecar(path: str) -> dict:
  """The ``.meta.json`` beside score file ``path`` ({} if absent or unreadable)."""
  try:
    with open(path + ".meta.json", encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def _batch(meta: dict, proxy: str) -> Optional[int]:
  """Images per minibatch ``proxy`` was scored with (None for a proxy without data)."""
  images = meta.get("settings", {}).get("proxy_settings", {}).get(proxy, {}).get("images")
  return int(images) if images and get_proxy(proxy).needs_data else None


def cost(path: str, proxy: str, n: int) -> dict:
  """``seconds_per_arch``, ``executor`` and ``batch`` (images per minibatch; absent for a
  proxy without data) of a score file from its sidecar (``run.seconds``
  sums every resumed run; wall seconds on whatever shared the machine; a proxy scored in a joint
  pass carries its share of the pass), or ``{}``."""
  meta = _sidecar(path)
  run = meta.get("run")
  if not isinstance(run, dict):
    return {}
  sec = run.get("seconds", {}).get(proxy)
  out = {"executor": run.get("modes", {}).get(proxy)}
  batch = _batch(meta, proxy)
  if batch:
    out["batch"] = batch
  group = run.get("joint", {}).get(proxy)
  if group:   # one pass for the group, its time split evenly (jaxnas.proxies.joint)
    others = "+".join(g for g in group if g != proxy)
    out["executor"] = f"{out['executor']}, one pass with {others}"
  if sec is not None and n:
    out["seconds_per_arch"] = sec / n
  return out


def member_file(score_dir: str, name: str) -> Optional[str]:
  """The complete score file of ``name`` at its own protocol's batch (``Proxy.batch_size``, the
  batch NB201's ensemble was fitted with), in ``score_dir`` or one of its subfolders (a
  ``batch64/`` kept beside NASLib's batch), or None. A data-free proxy: any file."""
  proxy = get_proxy(name)
  paths = [os.path.join(score_dir, f"scores_{name}.csv")]
  paths += sorted(glob.glob(os.path.join(score_dir, "*", f"scores_{name}.csv")))
  for path in paths:
    if os.path.isfile(path) and (not proxy.needs_data
                                 or _batch(_sidecar(path), name) == proxy.batch_size):
      return path
  return None


def ensemble_rows(score_dir: str, metric: str) -> list:
  """The NB201-fitted ``ensemble`` off NB201: :func:`jaxnas.proxies.ensemble.combine` of its members'
  complete score files (same rows) at the batch it was fitted with (:func:`member_file`; its
  standardisation is NB201's: nwot's log-determinant grows with the batch), exactly as fitted
  (NB201's means, deviations and weights)."""
  from jaxnas.proxies import ensemble
  spec = ensemble.coefficients()
  scores, idx, arch_strs = {}, None, {}
  for m in spec["members"]:
    path = member_file(score_dir, m["name"])
    if path is None:
      return []
    i, s = _io.read_scores(path, arch_strs)[m["name"]]
    if idx is not None and not np.array_equal(i, idx):
      return []
    idx, scores[m["name"]] = i, s
  t = benchmarks.truth(metric, idx, [arch_strs[int(i)] for i in idx])
  members = "+".join(f"{m['weight']:g} {m['name']}" for m in spec["members"])
  return [rank_row(f"ensemble (NB201 fit: {members})", ensemble.combine(scores, spec), t)]


def markdown(rows: list) -> str:
  lines = ["| proxy | n | batch | Spearman (jaxnas) | 95 % CI | Kendall | "
           "NASLib Spearman, same rows | jaxnas - NASLib, 95 % CI | "
           "Spearman jaxnas vs NASLib scores | non-finite | s per arch (executor) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  fmt = lambda v: "" if v is None else f"{v:.3f}"
  fmt_ci = lambda v: "" if v is None else f"{v[0]:.2f} .. {v[1]:.2f}"
  for r in rows:
    c = r.get("seconds_per_arch")
    c = "" if c is None else (f"{c:.2g}" if c < 1 else f"{c:.1f}") + f" ({r.get('executor')})"
    lines.append(f"| {r['proxy']} | {r['n']} | {r.get('batch', '')} | {r['spearman']:.3f} | "
                 f"{fmt_ci(r.get('spearman_ci'))} | {r['kendall']:.3f} | "
                 f"{fmt(r['naslib_spearman'])} | {fmt_ci(r.get('diff_vs_naslib_ci'))} | "
                 f"{fmt(r['spearman_vs_naslib_scores'])} | {r['nonfinite']} | {c} |")
  return "\n".join(lines)


#: The order ``--score`` runs a space's proxies in (cheapest first on this CPU); ``a+b`` share one
#: pass (:mod:`jaxnas.proxies.joint`). Supported proxies not listed run after these.
ORDER = ("params", "flops", "az_complexity", "l2_norm", "synflow", "synflow_bn",
         "grad_norm+snip+plain", "fisher", "jacob_cov", "nwot", "meco", "meco_opt",
         "az_expressivity+az_progressivity+az_trainability", "epsilon",
         "tenas_regions", "epe_nas", "swap", "zico", "grasp", "nasi", "nasi_gaussian",
         "nasi_random_labels", "tenas_ntk_cond", "hnas_cond+hnas_trace")
#: (On DARTS C=32, L=8 here: nasi 17 s per genotype; the HNAS pair 24 s (one kernel, shared).
#: On NB101: the HNAS pair 72 s per cell at 14.5 GiB (its kernel in 8 groups of parameters);
#: tenas_ntk_cond ~19 min per cell (72 reverse passes of the batch): ~95 CPU-hours, last.)
#: The score command's options per space (DARTS: the reference's network size).
OPTIONS = {"darts": ["--config", "C=32,L=8"], "nb101": []}
#: Options for one proxy on one space: grasp on DARTS in ``map`` (its default ``'jvp'`` route, at
#: batch 64: 28-34 s per genotype at 11.3 GiB peak, against 44 s / 10.7 GiB eagerly; the
#: ``'forward'`` route asked for 66 GB there; experiments/bench_grasp_memory.py; the table now
#: scores it at NASLib's 32, not measured), pinned so that a resumed run uses the same executor
#: whatever memory is free.
#: zico on NB101 (2 x 128 images) recomputes each cell in the backward pass (``remat``, same
#: values): 7.0 GiB peak, so it runs beside another job on 24 GiB (at 2 x 32: 3.5 GiB with it,
#: 6.4 GiB without; 2 x 128 without it not measured here).
PROXY_OPTIONS = {("darts", "grasp"): ["--mode", "map"],
                 ("nb101", "zico"): ["--config", "remat=true"]}
#: The minibatch of the proxies the shared CSV holds reference scores of (a ``naslib_<proxy>``
#: column): NB101's were computed at 32 (methods-spec §13.0 F5), and so were DARTS' (NB301): the
#: same evidence, NASLib's jacob_cov is at most about -N for an N-image batch and the CSV's lies in
#: -32.38 .. -32.18 (ours at 64: -65.8 .. -64.9), and NASWOT's log-determinant of the N x N code
#: kernel, near-proportional to N, is 1.99x NASLib's at 64 on every genotype (1.98 .. 1.99). Other
#: proxies keep their own protocol's minibatch (epsinas: 256 images; nwot on NB101 was scored at
#: 32 before this rule).
NASLIB_BATCH = {"nb101": 32, "darts": 32}


def complete_proxies(score_dir: str) -> set:
  """Proxies with a complete score file in ``score_dir`` (alone or in a joint file)."""
  done = set()
  for path in glob.glob(os.path.join(score_dir, "scores_*.csv")):
    meta = _sidecar(path)
    if meta.get("state", {}).get("complete"):
      done.update(meta["settings"]["proxies"])
  return done


def score_plan(space: str, score_dir: str, csv_path: str, only=None) -> list:
  """``[(file stem, argv of `jaxnas score`)]`` for every proxy of ``space`` still without a
  complete file, in :data:`ORDER` (a group loses the members already complete elsewhere);
  ``only``: restrict to these proxy names."""
  from jaxnas.proxies import supported_proxies
  from jaxnas.proxies import is_pooled
  # ensembles and pool-relative scores are computed from their members' files
  supported = [p for p in supported_proxies(space) if p != "ensemble" and not is_pooled(p)]
  supported = [p for p in supported if only is None or p in only]
  with open(csv_path, newline="", encoding="utf-8") as f:
    columns = next(csv.reader(f))
  done = complete_proxies(score_dir)
  listed = [g.split("+") for g in ORDER]
  groups = listed + [[p] for p in supported if not any(p in g for g in listed)]
  plan = []
  for g in groups:
    g = [p for p in g if p in supported and p not in done]
    if not g:
      continue
    stem = "+".join(g)
    argv = ["score", "--space", space, "--archs-file", csv_path, "--proxies", ",".join(g),
            "--out", os.path.join(score_dir, f"scores_{stem}.csv"), "--resume", "--no-progress",
            "--chunk-size", "8"]
    opts = list(OPTIONS.get(space, []))
    for p in g:
      opts += PROXY_OPTIONS.get((space, p), [])
    if space in NASLIB_BATCH and all(f"naslib_{p}" in columns for p in g):
      opts += ["--batch-size", str(NASLIB_BATCH[space])]
    plan.append((stem, argv + opts))
  return plan


#: Default folder of JAX's persistent compilation cache shared by the scoring processes.
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "jaxnas", "xla")


def run_plan(plan: list, dry_run: bool = False, cache: Optional[str] = CACHE) -> int:
  """Runs each ``jaxnas score`` of the plan in its own process (a failure is reported and the
  next one runs); returns the number that failed.

  ``cache``: the folder of JAX's persistent compilation cache the processes share
  (``JAXNAS_COMPILATION_CACHE``, unless the environment already names one; None: none). NB101
  runs eagerly and each new cell shape compiles its operations: a process that finds them cached
  starts a cell 20 s sooner (GraSP, measured on one cell: 29 s against 49 s first time, 24.5 s
  warm), and a resumed DARTS ``map`` run skips its 1-3 minute compilation."""
  import subprocess
  import sys
  from jaxnas import _xla
  env = dict(os.environ)
  if cache is not None and not env.get(_xla.CACHE_ENV, "").strip():
    env[_xla.CACHE_ENV] = cache
  failed = 0
  for stem, argv in plan:
    print(" ".join(["jaxnas", *argv]), flush=True)
    if not dry_run and subprocess.run([sys.executable, "-m", "jaxnas", *argv],
                                      env=env).returncode:
      failed += 1
      print(f"space_correlation: {stem} failed; continuing", flush=True)
  return failed


def lacking(space: str, score_dir: str, csv_path: str) -> str:
  """The table's last line for the space's own folder (named ``<space>_correlation``, wherever it
  is: a scoring lane in a worktree names the main checkout's): the proxies it supports that have
  no complete file yet; empty for any other folder (e.g. ``batch64/``, a deliberate subset)."""
  if os.path.basename(os.path.normpath(score_dir)) != SETUPS[space][2]:
    return ""
  todo = [stem for stem, _ in score_plan(space, score_dir, csv_path)]
  return ("\n\nSupported by the space, no complete file yet (`--score` resumes them): "
          + (", ".join(todo) if todo else "none") + "." + refused(space))


def refused(space: str) -> str:
  """A line naming the registered proxies ``space`` cannot run, each with the capabilities its
  network lacks (``proxies.missing_capabilities``); empty when it runs them all."""
  from jaxnas.proxies import list_proxies, missing_capabilities
  out = [f"{p} ({', '.join(m)})" for p in list_proxies()
         if (m := missing_capabilities(p, space))]
  return ("\n\nRefused by the space (the capabilities its network lacks): " + ", ".join(out)
          + ".") if out else ""


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--space", default="darts", choices=sorted(SETUPS))
  ap.add_argument("--dir", default=None, help="folder of scores_<proxy>.csv (default: "
                  "experiments/results/<space>_correlation)")
  ap.add_argument("--csv", default=None, help="the shared CSV with the NASLib columns")
  ap.add_argument("--score", action="store_true", help="first score (resuming) every proxy of the "
                  "space that has no complete file, cheapest first, then write the table")
  ap.add_argument("--only", default=None, help="with --score: only these proxies (comma-separated)")
  ap.add_argument("--dry-run", action="store_true", help="with --score: print the commands only")
  ap.add_argument("--compilation-cache", default=CACHE, help="with --score: the folder of JAX's "
                  "persistent compilation cache the scoring processes share ('none': no cache; "
                  f"default {CACHE}; JAXNAS_COMPILATION_CACHE in the environment wins)")
  args = ap.parse_args(argv)
  name, metric, folder, title = SETUPS[args.space]
  score_dir = args.dir or os.path.join(HERE, "results", folder)
  csv_path = args.csv or os.path.join(SHARED, name)
  if args.score:
    only = None if args.only is None else set(args.only.split(","))
    cache = None if args.compilation_cache.lower() == "none" else args.compilation_cache
    failed = run_plan(score_plan(args.space, score_dir, csv_path, only), args.dry_run, cache)
    if args.dry_run:
      return
    if failed:
      print(f"space_correlation: {failed} scoring run(s) failed (see above)")
  with open(csv_path, newline="", encoding="utf-8") as f:
    ref = list(csv.DictReader(f))
  rows = correlation_rows(score_dir, ref, metric)
  table = markdown(rows) + lacking(args.space, score_dir, csv_path)
  with open(os.path.join(score_dir, "table.md"), "w") as f:
    f.write(title + "\n\n" + table + "\n")
  with open(os.path.join(score_dir, "table.json"), "w") as f:
    json.dump(rows, f, indent=1)
  print(table)


if __name__ == "__main__":
  main()
