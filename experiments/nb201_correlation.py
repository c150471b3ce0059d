"""NB201 correlation study: every proxy against 200-epoch accuracy.

For each proxy, scores a set of NB201 architectures at the default size (C=16, N=5, 32x32) on the
bundled CIFAR-10 minibatch and reports Spearman rho and Kendall tau against ``cifar10_test200`` and
``cifar100_test200`` on the scored architectures, and against ``cifar10_val200`` on the
500-architecture NAS-Bench-Suite-Zero subset (the NASLib reference figures).

Architecture sets (``--set``):
  * ``all``: the 15,625 architectures;
  * ``subset``: the 500-architecture subset;
  * ``subset+N``: the subset plus N more drawn uniformly with ``--seed`` (whole-space estimates
    come from the uniform part; the subset is not a uniform sample);
  * ``uniform:N``: only the N uniform draws of ``subset+N`` (same seed, same architectures);
  * ``random:N``: the first N of a seeded permutation of the space, scored in that order, so
    ``random:300`` is a prefix of ``random:3000`` and an interrupted run's scores are a uniform
    sample too (a long run can span sessions: commit the partial files, rerun to continue);
  * ``file:PATH``: the indices in PATH (whitespace-separated), scored in that order;
  * ``subset:N``: N architectures of the subset drawn with ``--seed`` (for proxies too slow on a
    CPU for the whole subset);
  * ``outside:N``: N uniform draws from the 15,125 architectures outside the subset that begin
    with the uniform part of ``subset+1000`` outside the subset (same seed; 966 for seed 0, the
    architectures the 1,466-architecture files already hold), continued in a seeded order, so
    ``outside:3000`` grows the existing files instead of starting over (a prefix is uniform too).

``--block B`` scores the set B architectures at a time, every proxy per block, so the components of
a pool-relative score (``aznas``) cover the same architectures when a long run is interrupted.

Scores go to ``OUT/scores_<proxy>.csv`` incrementally (one flushed chunk at a time); rerunning skips
architectures already scored. ``--shard K/M`` scores every M-th architecture of the set from the
K-th, so M processes (each with its own ``--out``) share a machine's cores; ``--merge DIR ...``
then appends their scores to ``--out`` (a score depends only on architecture, seed and batch, so
a shard's score equals the unsharded one; merging checks this on any overlap). The table goes to ``OUT/table.{json,md}`` and scatter plots to
``OUT/scatter_<truth>.png``.

  python experiments/nb201_correlation.py --proxies params,flops --set all
  python experiments/nb201_correlation.py --proxies synflow,nwot --set subset+1000
  python experiments/nb201_correlation.py --table-only
  python experiments/nb201_correlation.py --proxies aznas,meco --set uniform:3000 --out DIR

A pool-relative score (``aznas``) scores its components; the table ranks it over the architectures
all its components' files share (its row says the pool size).
  python experiments/nb201_correlation.py --proxies nwot --set all --shard 0/2 --out /tmp/s0 &
  python experiments/nb201_correlation.py --proxies nwot --set all --shard 1/2 --out /tmp/s1
  python experiments/nb201_correlation.py --merge /tmp/s0 /tmp/s1
"""

import argparse
import csv
import json
import os
import time

import numpy as np

from jaxnas import benchmarks, data, engine
from jaxnas.benchmarks import nb201 as bench
from jaxnas.commands import _io
from jaxnas.commands.score import downsample
from jaxnas.proxies import epsilon, expand, get_pooled, get_proxy, list_proxies, with_pooled
from jaxnas.spaces import nb201

# Published figures (methods-spec §3.3, §7; the issue): whole space vs CIFAR-10 test accuracy
# (zero-cost-nas reports |rho|), and NASLib on the 500-architecture subset vs cifar10_val200.
PUBLISHED_WHOLE = {"synflow": 0.74, "jacob_cov": 0.73, "snip": 0.60, "grad_norm": 0.59,
                   "grasp": 0.51, "fisher": 0.36, "nwot": 0.77, "zico": 0.80, "params": 0.75,
                   "flops": 0.73, "epsilon": 0.87}
PUBLISHED_SUBSET = {"nwot": 0.804, "jacob_cov": 0.782, "params": 0.749, "synflow": 0.745,
                    "l2_norm": 0.739, "flops": 0.722, "epe_nas": 0.686, "snip": 0.608,
                    "grad_norm": 0.608, "grasp": 0.565, "fisher": 0.511, "plain": -0.247}
# Proxies whose reference leaves undefined scores out of its statistics, and the value jaxnas
# returns for them (epsinas: a constant output gives NaN, dropped; jaxnas returns 0, the minimum).
# The table adds a "(defined only)" row computed the reference's way.
UNDEFINED_SCORE = {"epsilon": epsilon.UNDEFINED}


def _count(name: str) -> int:
  try:
    n = int(name.replace("+", ":").split(":", 1)[1])
  except ValueError:
    raise SystemExit(f"--set {name}: N must be an integer in 1..15625") from None
  if not 0 < n <= 15625:
    raise SystemExit(f"--set {name}: N must be in 1..15625, got {n}")
  return n


def arch_set(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(indices, is_uniform) for a set name."""
  sub = np.sort(bench.subset_indices())
  if name == "all":
    return np.arange(15625), np.ones(15625, bool)
  if name == "subset":
    return sub, np.zeros(len(sub), bool)
  if name.startswith("subset:"):
    n = int(name.split(":", 1)[1])
    if not 0 < n <= len(sub):
      raise SystemExit(f"--set subset:N needs 1 <= N <= {len(sub)}, got {n}")
    idx = np.sort(np.random.default_rng(seed).choice(sub, n, replace=False))
    return idx, np.zeros(n, bool)
  if name.startswith("file:"):  # one NB201 index per line, scored in file order
    path = name.split(":", 1)[1]
    try:
      idx = np.array([int(t) for t in open(path).read().split()], np.int64)
    except (OSError, ValueError) as e:
      raise SystemExit(f"--set {name}: cannot read indices ({e})") from None
    if len(idx) == 0 or idx.min() < 0 or idx.max() >= 15625 or len(set(idx.tolist())) != len(idx):
      raise SystemExit(f"--set {name}: needs distinct indices in 0..15624")
    return idx, np.ones(len(idx), bool)
  if name.startswith("random:"):
    n = _count(name)
    return np.random.default_rng(seed).permutation(15625)[:n], np.ones(n, bool)
  if name.startswith("outside:"):
    n = _count(name)
    if n > 15625 - len(sub):
      raise SystemExit(f"--set {name}: N must be at most {15625 - len(sub)} (outside the subset)")
    first = np.setdiff1d(np.random.default_rng(seed).choice(15625, 1000, replace=False), sub)
    rest = np.setdiff1d(np.setdiff1d(np.arange(15625), sub), first)
    rest = np.random.default_rng([seed, 1]).permutation(rest)
    return np.concatenate([first, rest])[:n], np.ones(n, bool)
  if name.startswith(("subset+", "uniform:")):
    n = _count(name)
    rng = np.random.default_rng(seed)
    uni = np.sort(rng.choice(15625, n, replace=False))
    if name.startswith("uniform:"):
      return uni, np.ones(n, bool)
    idx = np.union1d(sub, uni)
    return idx, np.isin(idx, uni)
  raise SystemExit(f"unknown --set {name!r}; allowed: all, subset, subset+N, uniform:N, random:N, "
                   "subset:N, outside:N, file:PATH")


def read_done(path):
  if not os.path.exists(path) or os.path.getsize(path) == 0:  # a run killed before its header
    return {}
  with open(path, newline="") as f:
    return {int(r["index"]): float(r["score"]) for r in csv.DictReader(f)}


def shard(indices: np.ndarray, spec: str) -> np.ndarray:
  """The ``K/M`` shard of ``indices``: every M-th element from the K-th ('' = all)."""
  if not spec:
    return indices
  try:
    k, m = (int(v) for v in spec.split("/"))
  except ValueError:
    raise SystemExit(f"--shard must be K/M with integers 0 <= K < M, got {spec!r}") from None
  if not 0 <= k < m:
    raise SystemExit(f"--shard must be K/M with integers 0 <= K < M, got {spec!r}")
  return indices[k::m]


def merge(out_dir: str, sources: list[str], rtol: float = 1e-6) -> dict:
  """Appends to ``out_dir``'s score files the rows of ``sources``' score files it lacks.

  Returns ``{proxy: rows added}``. Raises SystemExit if a source scores an architecture that
  ``out_dir`` (or an earlier source) already has with a different value beyond ``rtol``.
  """
  added = {}
  for src in sources:
    if not os.path.isdir(src):
      raise SystemExit(f"--merge: {src!r} is not a directory")
    for fn in sorted(os.listdir(src)):
      if not (fn.startswith("scores_") and fn.endswith(".csv")):
        continue
      proxy, path = fn[len("scores_"):-4], os.path.join(out_dir, fn)
      have = read_done(path)
      with open(os.path.join(src, fn), newline="") as f:
        rows = list(csv.DictReader(f))
      new = [r for r in rows if int(r["index"]) not in have]
      for r in rows:
        i, v = int(r["index"]), float(r["score"])
        if i in have and not np.isclose(v, have[i], rtol=rtol, atol=0.0, equal_nan=True):
          raise SystemExit(f"--merge: {proxy} architecture {i} scored {v!r} in {src} but "
                           f"{have[i]!r} in {out_dir} (same seed and batch should agree)")
      header = not os.path.exists(path) or os.path.getsize(path) == 0
      with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if header:
          w.writerow(_io.CSV_COLUMNS)
        for r in new:
          w.writerow([r[c] for c in _io.CSV_COLUMNS])
      added[proxy] = added.get(proxy, 0) + len(new)
      print(f"  merged {len(new)} new {proxy} scores from {src}", flush=True)
  return added


def score_proxy(proxy, indices, out_dir, batch, seed, chunk, config=None):
  path = os.path.join(out_dir, f"scores_{proxy}.csv")
  done = read_done(path)
  todo = np.array([i for i in indices if i not in done], np.int64)
  new = not os.path.exists(path) or os.path.getsize(path) == 0
  t0, n0 = time.perf_counter(), 0
  with open(path, "a", newline="") as f:
    w = csv.writer(f)
    if new:
      w.writerow(_io.CSV_COLUMNS)
    for s in range(0, len(todo), chunk):
      idx = todo[s:s + chunk]
      archs = nb201.from_index(idx)
      res = engine.score("nb201", archs, [proxy], batch, seed=seed, chunk_size=chunk,
                         config=config)[proxy]
      for i, a, v in zip(idx, archs, res):
        w.writerow((int(i), nb201.decode(a), proxy, repr(float(v))))
        done[int(i)] = float(v)
      f.flush()
      os.fsync(f.fileno())
      n0 += len(idx)
      rate = n0 / (time.perf_counter() - t0)
      print(f"  {proxy}: {len(done)}/{len(indices)} ({rate:.2f} arch/s, "
            f"ETA {(len(todo) - n0) / max(rate, 1e-9) / 60:.1f} min)", flush=True)
  return done


def _entry(label, proxy, idx, s):
  """Correlations of oriented scores ``s`` of the architectures ``idx``."""
  entry = {"proxy": label, "source": proxy, "n_scored": int(len(idx)), "n_nonfinite": int(np.sum(~np.isfinite(s)))}
  for truth in ("cifar10_test200", "cifar100_test200"):
    acc = benchmarks.accuracy(idx, truth)
    entry[f"{truth}_spearman"] = benchmarks.spearman(s, acc)
    entry[f"{truth}_kendall"] = benchmarks.kendall(s, acc)
  sub = np.isin(idx, bench.subset_indices())
  if sub.sum() >= 30:
    acc = benchmarks.accuracy(idx[sub], "cifar10_val200")
    entry["subset_n"] = int(sub.sum())
    entry["subset_cifar10_val200_spearman"] = benchmarks.spearman(s[sub], acc)
  entry["published_whole_space"] = PUBLISHED_WHOLE.get(proxy)
  entry["published_naslib_subset"] = PUBLISHED_SUBSET.get(proxy)
  return entry


def table(out_dir, seed):
  rows = []
  raw = {}
  for fn in sorted(os.listdir(out_dir)):
    if not (fn.startswith("scores_") and fn.endswith(".csv")):
      continue
    proxy = fn[len("scores_"):-4]
    done = read_done(os.path.join(out_dir, fn))
    if len(done) < 3:
      continue
    idx = np.array(sorted(done))
    s = np.array([done[i] for i in idx])
    raw[proxy] = (idx, s)
    orient = 1.0 if get_proxy(proxy).higher_is_better else -1.0
    rows.append(_entry(proxy, proxy, idx, orient * s))
    if proxy in UNDEFINED_SCORE:  # the reference's protocol: undefined scores left out
      keep = s != UNDEFINED_SCORE[proxy]
      rows.append(_entry(f"{proxy} (defined only)", proxy, idx[keep], orient * s[keep]))
  pooled = {p: v for p, v in with_pooled(raw).items() if p not in raw}  # ranked over the files
  for name, (idx, s) in sorted(pooled.items()):
    orient = 1.0 if get_pooled(name).higher_is_better else -1.0
    rows.append(_entry(f"{name} (pool of {len(idx)})", name, idx, orient * s))
  with open(os.path.join(out_dir, "table.json"), "w") as f:
    json.dump(rows, f, indent=2)
  md = ["| proxy | archs scored | rho C10 test | tau C10 test | rho C100 test | published rho (whole space) "
        "| subset archs | rho subset C10 val | NASLib subset |", "|---|---|---|---|---|---|---|---|---|"]
  fmt = lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"
  for r in rows:
    md.append(f"| {r['proxy']} | {r['n_scored']} | {fmt(r['cifar10_test200_spearman'])} | "
              f"{fmt(r['cifar10_test200_kendall'])} | {fmt(r['cifar100_test200_spearman'])} | "
              f"{fmt(r['published_whole_space'])} | {r.get('subset_n', '')} | "
              f"{fmt(r.get('subset_cifar10_val200_spearman'))} | "
              f"{fmt(r['published_naslib_subset'])} |")
  with open(os.path.join(out_dir, "table.md"), "w") as f:
    f.write("\n".join(md) + "\n")
  print("\n".join(md))
  scores = {}
  for name, (idx, s) in {**raw, **pooled}.items():
    orient = 1.0 if (get_pooled(name) if name in pooled else get_proxy(name)).higher_is_better \
        else -1.0
    scores[name] = (idx, orient * s)
  if scores:
    _io.scatter_plot(scores, "cifar10_test200", os.path.join(out_dir, "scatter_cifar10_test200.png"))
  return rows


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--proxies", default="", help="comma-separated; 'all' for every registered proxy")
  p.add_argument("--set", default="subset+1000")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--batch-size", type=int, default=64)
  p.add_argument("--chunk", type=int, default=32)
  p.add_argument("--block", type=int, default=0, help="score the set B architectures at a time, "
                 "every proxy per block (0: each proxy over the whole set in turn)")
  p.add_argument("--out", default="experiments/results/correlation")
  p.add_argument("--table-only", action="store_true")
  p.add_argument("--config", default="", help="network overrides, e.g. N=1 (reduced size; use "
                 "a separate --out)")
  p.add_argument("--resolution", type=int, default=32, help="average-pool images to RxR")
  p.add_argument("--shard", default="", help="K/M: score every M-th architecture of the set "
                 "from the K-th (run M processes, each with its own --out, then --merge)")
  p.add_argument("--merge", nargs="+", default=[], metavar="DIR",
                 help="append the score files of these --out directories to --out, then tabulate")
  a = p.parse_args()
  os.makedirs(a.out, exist_ok=True)
  if a.merge:
    merge(a.out, a.merge)
  elif not a.table_only:
    names = expand(list_proxies() if a.proxies == "all" else _io.split(a.proxies))
    config = {k: int(v) for k, v in (kv.split("=") for kv in _io.split(a.config))}
    idx, _ = arch_set(a.set, a.seed)
    idx = shard(idx, a.shard)
    if a.block < 0:
      raise SystemExit(f"--block must be >= 0, got {a.block}")
    block = a.block or len(idx)
    for end in range(block, len(idx) + block, block):
      for name in names:  # score_proxy skips what a file holds, so a growing prefix is cheap
        proxy = get_proxy(name)
        bs = proxy.batch_size or a.batch_size
        batch = downsample(data.minibatch("cifar10-bundled", bs, seed=a.seed), a.resolution)
        print(f"{name}: {min(end, len(idx))} of {len(idx)} architectures, batch {bs}", flush=True)
        score_proxy(name, idx[:end], a.out, batch, a.seed, a.chunk, config or None)
  table(a.out, a.seed)


if __name__ == "__main__":
  main()
