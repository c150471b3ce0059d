"""DARTS-space searches on CPU: NASI and FreeDARTS on the search supernet (C=16, 8 cells).

For each (method, options) row and seed: the genotype, the search's wall time on this machine, and
the size of the evaluation network (C=36, 20 cells; also C=38, the FreeDARTS retrain setting),
beside the papers (NASI 4.4 M at C=36; FreeDARTS 3.65 M at C=38). The architectures are not
trained here (600 epochs of CIFAR-10 are out of reach on a CPU): only size and cost are compared.

Writes ``experiments/results/darts_search.json``.

Usage::

  python experiments/darts_search.py                 # freedarts, freenas, nasi; seed 0
  python experiments/darts_search.py --rows nasi --seeds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from jaxnas import search
from jaxnas.spaces import darts

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

#: label -> (method, options, paper size, note)
ROWS = {
    "freedarts": ("freedarts", {}, "3.65 M at C=38 (FreeDARTS+ retrain log, 20-cell search)",
                  "SynFlow-on-alpha, one shot, supernet C=16, L=8, all-ones input"),
    "freenas": ("freenas", {}, None, "FreeFlow, iterative pruning (6 rounds + final)"),
    "nasi": ("nasi", {"supernet": {"C": 16, "L": 8}, "steps": 10, "batch_size": 16},
             "4.4 M at C=36 (NASI-FIX) / 4.2 M (NASI-ADA)",
             "supernet C=16, L=8; T=10 steps of b=16 (paper T=100, b=64), nu adaptive"),
    "nasi-small": ("nasi", {"steps": 10, "batch_size": 16, "resolution": 16},
                   "4.4 M at C=36 (NASI-FIX) / 4.2 M (NASI-ADA)",
                   "reduced supernet C=8, L=5 (the method's default on a CPU), 16x16 inputs; "
                   "T=10 steps of b=16 (paper T=100, b=64 on C=16, L=8 at 32x32)"),
}


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--rows", default=",".join(ROWS))
  ap.add_argument("--seeds", type=int, default=1)
  ap.add_argument("--out", default=os.path.join(RESULTS, "darts_search.json"))
  args = ap.parse_args(argv)
  labels = [r for r in args.rows.split(",") if r]
  for r in labels:
    if r not in ROWS:
      ap.error(f"unknown row {r!r}; allowed: {', '.join(ROWS)}")
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  doc = {"machine": dict(platform=platform.platform(), cpus=os.cpu_count()), "runs": []}
  if os.path.exists(args.out):
    with open(args.out) as f:
      doc["runs"] = [r for r in json.load(f).get("runs", []) if r["label"] not in labels]
  for label in labels:
    method, options, paper, note = ROWS[label]
    for seed in range(args.seeds):
      t0 = time.perf_counter()
      res = search.search(method, "darts", seed=seed, **options)
      doc_r = search.to_json(res)
      rec = dict(label=label, method=method, options=options, seed=seed, note=note,
                 paper_size=paper, seconds=res.seconds, genotype=doc_r["genotype"],
                 params_M_C36=doc_r["params_M"],
                 params_M_C38=float(darts.count_params(res.arch, C=38, L=20)) / 1e6,
                 trace_seconds=[t.get("seconds") for t in res.trace])
      doc["runs"].append(rec)
      print(f"{label} seed {seed}: {res.seconds:.1f} s (wall {time.perf_counter() - t0:.1f} s), "
            f"{rec['params_M_C36']:.2f} M at C=36, {rec['params_M_C38']:.2f} M at C=38\n  "
            f"{json.dumps(rec['genotype'])}", flush=True)
      tmp = args.out + ".tmp"
      with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
      os.replace(tmp, args.out)


if __name__ == "__main__":
  main()
