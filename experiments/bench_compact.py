"""NB101's per-sample-gradient proxies over the compact parameters against the shared layout.

``Network.compact`` hands HNAS' kernel and TE-NAS' NTK the discrete layers of one architecture at
their real widths (4.3M entries on average over the 300 benchmark rows) instead of the shared
full-width layout (57M entries for every architecture). Both routes, for the same rows of
``../shared/data/nb101_naslib300.csv``, the same seed, minibatch and ``--config``, as
``experiments/space_correlation.py`` scores them; each (row, route) runs in its own process (so
its peak resident memory is its own), the routes alternating row by row:

* ``seconds``: the scoring call (tracing included; the compilation cache is on when
  ``JAXNAS_COMPILATION_CACHE`` is set);
* ``peak_rss_gb``: the process's peak resident memory;
* the scores of both routes and their relative difference.

Results go to ``experiments/results/bench_compact.json`` (one entry per proxy group and row,
written after each; a rerun skips entries already there).

  python experiments/bench_compact.py --proxies hnas_cond,hnas_trace --rows 2,3 --config remat=true
  python experiments/bench_compact.py --proxies tenas_ntk_cond --rows 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

OUT = "experiments/results/bench_compact.json"
CSV = "../shared/data/nb101_naslib300.csv"
ROUTES = ("shared", "compact")


def one(row: int, names: list, route: str, config: dict, csv_path: str) -> dict:
  """Scores ``row`` with ``names`` by ``route`` in this process: seconds, scores, peak memory."""
  import numpy as np
  from jaxnas import data
  from jaxnas.commands import _io
  from jaxnas.engine import scoring
  from jaxnas.spaces import base, get_space
  if route == "shared":   # the route before Network.compact: differentiate the shared layout
    base.Network.compact = lambda self, variables: (self, variables)
  space = get_space("nb101")
  archs = _io.select_archs(space, None, csv_path, None, 0)
  ids = scoring.default_ids(space, archs)
  batch = scoring.paper_batches(names, lambda n: data.minibatch("cifar10-bundled", n, seed=0))
  t = time.perf_counter()
  out = scoring.score(space, archs[row:row + 1], names, batch, seed=0, ids=ids[row:row + 1],
                      config=config, chunk_size=1)
  seconds = time.perf_counter() - t
  return {"seconds": seconds, "scores": {n: float(np.asarray(out[n])[0]) for n in names},
          "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def parse_config(text: str) -> dict:
  out = {}
  for item in filter(None, text.split(",")):
    k, _, v = item.partition("=")
    out[k] = {"true": True, "false": False}.get(v, v)
  return out


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--proxies", default="hnas_cond,hnas_trace")
  ap.add_argument("--rows", default="2,3", help="0-based rows of the CSV")
  ap.add_argument("--config", default="", help="e.g. remat=true")
  ap.add_argument("--csv", default=CSV)
  ap.add_argument("--out", default=OUT)
  ap.add_argument("--one", default=None, help=argparse.SUPPRESS)   # child: 'row:route'
  args = ap.parse_args()
  names = args.proxies.split(",")
  config = parse_config(args.config)
  if args.one:
    row, route = args.one.split(":")
    print(json.dumps(one(int(row), names, route, config, args.csv)))
    return
  results = json.load(open(args.out)) if os.path.exists(args.out) else {
      "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
      "entries": {}}
  for row in map(int, args.rows.split(",")):
    key = f"{args.proxies}|{args.config}|row {row}"
    if key in results["entries"]:
      print(key, "already measured")
      continue
    entry = {}
    for route in ROUTES:
      cmd = [sys.executable, __file__, "--proxies", args.proxies, "--config", args.config,
             "--csv", args.csv, "--one", f"{row}:{route}"]
      done = subprocess.run(cmd, capture_output=True, text=True, check=True)
      entry[route] = json.loads(done.stdout.strip().splitlines()[-1])
      print(key, route, entry[route], flush=True)
    entry["speedup"] = entry["shared"]["seconds"] / entry["compact"]["seconds"]
    entry["max_rel_diff"] = max(
        abs(entry["compact"]["scores"][n] - entry["shared"]["scores"][n])
        / max(abs(entry["shared"]["scores"][n]), 1e-30) for n in names)
    results["entries"][key] = entry
    with open(args.out, "w") as f:
      json.dump(results, f, indent=1)
    print(f"{key}: shared {entry['shared']['seconds']:.1f} s, compact "
          f"{entry['compact']['seconds']:.1f} s ({entry['speedup']:.2f}x), peak "
          f"{entry['shared']['peak_rss_gb']:.1f} -> {entry['compact']['peak_rss_gb']:.1f} GB, "
          f"scores differ by {entry['max_rel_diff']:.1e} (relative)", flush=True)


if __name__ == "__main__":
  main()
