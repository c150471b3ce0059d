"""SWAP's 32 re-initialisations on a concrete unrolled network: op by op, or compiled once per
architecture and run 32 times (``jaxnas.proxies.swap.COMPILE_ROWS``, the default).

SWAP is the one proxy whose NB101 and DARTS runs are dominated by the ``'eager'`` executor's
per-operation dispatch: 32 forward passes at batch 16, each dispatching some 4,000 (DARTS) or
1,600 (NB101) operations and Flax's parameter checks. Both ways run in this one process on the
first ``--n`` architectures of each space's shared file through the engine's ``'eager'`` executor,
alternating per architecture; the scores must agree (the counts of sign patterns can differ where
float rounding flips an activation's sign at zero).

  python experiments/bench_swap_rows.py [--spaces nb101,darts] [--n 3]

Results: ``experiments/results/bench_swap_rows.json`` (seconds per architecture each way, the
ratio, the scores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, os.pardir, os.pardir, "shared", "data")
FILES = {"nb101": "nb101_naslib300.csv", "darts": "nb301_naslib500.csv"}
CONFIGS = {"nb101": {}, "darts": {"C": 32, "L": 8}}   # space_correlation.py's networks


def bench(space_name: str, n: int) -> dict:
  import jax
  from jaxnas import data, get_space
  from jaxnas.commands import _io
  from jaxnas.engine import scoring
  from jaxnas.proxies import get_proxy, swap
  space = get_space(space_name)
  archs = _io.select_archs(space, None, os.path.join(SHARED, FILES[space_name]), None, 0)[:n]
  batch = data.minibatch(batch_size=swap.BATCH_SIZE, seed=0)
  fn = scoring.make_score_fn(space, get_proxy("swap"), CONFIGS[space_name], "eager")
  key = jax.random.key(0)
  rows = []
  for i, arch in enumerate(archs):
    row = {"row": i}
    for name, compiled in (("op_by_op", False), ("compiled_rows", True)):
      swap.COMPILE_ROWS = compiled
      t = time.perf_counter()
      s = float(np.asarray(fn(arch[None], np.asarray([i]), batch, key))[0])
      row[name] = {"seconds": time.perf_counter() - t, "score": s}
      print(f"{space_name} row {i} {name}: {row[name]['seconds']:.1f} s, swap {s:.3f}", flush=True)
    rows.append(row)
  swap.COMPILE_ROWS = True
  # the first architecture also pays the blocks' compilation (op by op) once: report both
  secs = {k: [r[k]["seconds"] for r in rows] for k in ("op_by_op", "compiled_rows")}
  steady = slice(1, None) if n > 1 else slice(None)
  out = {"space": space_name, "config": CONFIGS[space_name], "rows": rows,
         "mean_seconds": {k: float(np.mean(v[steady])) for k, v in secs.items()},
         "max_rel_score_diff": max(abs(r["op_by_op"]["score"] - r["compiled_rows"]["score"])
                                   / abs(r["op_by_op"]["score"]) for r in rows)}
  out["speedup"] = out["mean_seconds"]["op_by_op"] / out["mean_seconds"]["compiled_rows"]
  print(f"{space_name}: op by op {out['mean_seconds']['op_by_op']:.1f} s, compiled rows "
        f"{out['mean_seconds']['compiled_rows']:.1f} s per architecture (rows after the first): "
        f"{out['speedup']:.2f}x; scores differ by up to {out['max_rel_score_diff']:.1e} rel",
        flush=True)
  return out


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--spaces", default="nb101,darts")
  ap.add_argument("--n", type=int, default=3)
  ap.add_argument("--out", default=os.path.join(HERE, "results", "bench_swap_rows.json"))
  ap.add_argument("--note", default="", help="the conditions (e.g. other jobs running)")
  a = ap.parse_args(argv)
  import jax
  results = {"jax": jax.__version__, "machine": platform.processor() or platform.machine(),
             "cpus": os.cpu_count(), "note": a.note, "command": "python experiments/"
             f"bench_swap_rows.py --spaces {a.spaces} --n {a.n}",
             "spaces": [bench(s, a.n) for s in a.spaces.split(",")]}
  with open(a.out, "w") as f:
    json.dump(results, f, indent=1)
  print("wrote", a.out)


if __name__ == "__main__":
  main()
