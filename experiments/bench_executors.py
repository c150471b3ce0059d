"""Executors side by side: the same proxies, architectures, seed and batch under each engine mode.

For every proxy and mode (default ``map`` and ``eager``, the two CPU executors of
:mod:`jaxnas.engine.scoring`), at full NB201 size (C=16, N=5, 32x32, each proxy's paper batch of
the bundled CIFAR-10 sample; ``--space darts --config C=32,L=8`` or ``--space nb101``: uniform
samples of that space at the given size), in one process, alternating modes per proxy:

* ``first_s``: the first architecture in this process for this proxy and mode (tracing and
  compilation included; blocks compiled by an earlier proxy are reused, as in a real run);
* ``steady_s_per_arch``: median seconds per architecture over the next ``--n`` architectures
  (one per call);
* agreement of the two executors' scores on those architectures: the largest relative difference
  and the Spearman rank agreement.

Results go to ``experiments/results/bench_executors.json`` (other spaces:
``bench_executors_<space>.json``) after every proxy (a rerun skips proxies already there;
``--redo`` replaces them).

  python experiments/bench_executors.py [--proxies grad_norm,snip] [--n 4] [--modes map,eager]
  python experiments/bench_executors.py --space darts --config C=32,L=8 --proxies grad_norm --n 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

import jax

from jaxnas import data
from jaxnas.engine import scoring
from jaxnas.proxies import get_proxy, list_proxies

OUT = "experiments/results/bench_executors.json"


def spearman(a, b):
  ra, rb = (np.argsort(np.argsort(v)).astype(float) for v in (a, b))
  if np.std(ra) == 0 or np.std(rb) == 0:
    return float("nan")
  return float(np.corrcoef(ra, rb)[0, 1])


def time_mode(space, config, name, mode, archs, ids, batch):
  """(first_s, per-arch seconds of the rest, scores)."""
  scores, times = [], []
  for a, i in zip(archs, ids):
    t = time.perf_counter()
    s = scoring.score(space, a[None], [name], batch, ids=np.array([i]), chunk_size=1,
                      mode=mode, config=config)[name]
    times.append(time.perf_counter() - t)
    scores.append(float(s[0]))
  return times[0], times[1:], np.array(scores)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--proxies", default="", help="comma-separated (default: every proxy)")
  p.add_argument("--modes", default="map,eager")
  p.add_argument("--n", type=int, default=4, help="steady-state architectures per proxy and mode")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--space", default="nb201")
  p.add_argument("--config", default="", help="module overrides, e.g. C=32,L=8 (integers)")
  p.add_argument("--out", default=None, help=f"default {OUT} (nb201), else bench_executors_SPACE")
  p.add_argument("--redo", action="store_true")
  args = p.parse_args()
  config = {k: int(v) for k, v in (kv.split("=") for kv in args.config.split(",") if kv)}
  out = args.out or (OUT if args.space == "nb201" else OUT.replace(".json", f"_{args.space}.json"))
  names = [s for s in args.proxies.split(",") if s] or list_proxies()
  modes = [m for m in args.modes.split(",") if m]
  results = {}
  if os.path.exists(out):
    with open(out) as f:
      results = json.load(f)
  results.setdefault("proxies", {})
  results["setup"] = {"jax": jax.__version__, "python": platform.python_version(),
                      "machine": f"{os.cpu_count()} CPUs", "n": args.n, "space": args.space,
                      "size": "C=16 N=5 32x32" if args.space == "nb201" and not config else
                      f"{config or 'defaults'} 32x32",
                      "command": "python experiments/bench_executors.py " + " ".join(
                          a for a in os.sys.argv[1:])}
  from jaxnas.spaces import get_space
  space = get_space(args.space)
  if args.space == "nb201":
    rng = np.random.default_rng(args.seed)
    ids = rng.choice(15625, args.n + 1, replace=False).astype(np.int32)
    archs = np.asarray(space.from_index(ids), np.int32)
  else:
    archs = np.asarray(space.sample(jax.random.key(args.seed), args.n + 1), np.int32)
    ids = np.arange(args.n + 1, dtype=np.int32)
  for name in names:
    if name in results["proxies"] and not args.redo:
      continue
    proxy = get_proxy(name)
    batch = data.minibatch("cifar10-bundled", scoring.paper_batch_size(proxy), seed=args.seed)
    row, scores = {}, {}
    for mode in modes:
      first, rest, s = time_mode(space, config, name, mode, archs, ids, batch)
      scores[mode] = s
      row[mode] = {"first_s": round(first, 3),
                   "steady_s_per_arch": round(float(np.median(rest)), 4) if rest else None}
    if len(modes) == 2:
      a, b = scores[modes[0]], scores[modes[1]]
      fin = np.isfinite(a) & np.isfinite(b)
      rel = np.abs(a - b) / np.maximum(np.abs(a), 1e-30)
      row["max_rel_diff"] = float(np.max(rel[fin])) if fin.any() else None
      row["spearman"] = spearman(a[fin], b[fin])
      row["finite"] = int(fin.sum())
      s0, s1 = (row[m]["steady_s_per_arch"] for m in modes)
      row["speedup"] = round(s0 / s1, 2) if s0 and s1 else None
    results["proxies"][name] = row
    print(name, json.dumps(row), flush=True)
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".tmp", "w") as f:
      json.dump(results, f, indent=1, sort_keys=True)
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
  main()
