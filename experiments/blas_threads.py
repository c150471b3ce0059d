"""OpenBLAS threads beside XLA:CPU: the engine's LAPACK-heavy proxies with OpenBLAS' default thread
count and with one thread (picks jaxnas' default, ``jaxnas._xla.DEFAULT_BLAS_THREADS``).

XLA:CPU calls LAPACK (``eigh``, ``slogdet``, ...) through scipy's OpenBLAS, which starts its own
threads. For each setting, ``--procs`` worker processes start together (two: two shards on two
cores, as the README suggests for long runs); each scores the same seeded NB201 architectures at
full size with each proxy through :func:`jaxnas.engine.score` (once to compile, once timed).
Settings alternate over ``--repeats`` rounds (this machine is shared; the fastest round counts).
Reported per (setting, proxy): seconds per architecture (mean over the workers), the ratio to
the ``default`` setting in the same run, and the largest relative difference of the scores.

* ``default``: OpenBLAS' own thread count (``JAXNAS_BLAS_THREADS=none``, no thread variable);
* ``one``: ``OPENBLAS_NUM_THREADS=1`` (what ``import jaxnas`` sets when no thread variable is set).

  python experiments/blas_threads.py --proxies meco,az_expressivity,jacob_cov --archs 16 --procs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SETTINGS = {"default": {"JAXNAS_BLAS_THREADS": "none"}, "one": {"OPENBLAS_NUM_THREADS": "1"}}
_CLEAR = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "JAXNAS_BLAS_THREADS")

WORKER = r"""
import json, sys, time
from jaxnas import data, engine   # first: jaxnas sets its BLAS default before numpy loads
import numpy as np
from jaxnas.proxies import get_proxy
from jaxnas.spaces import nb201
proxies, n, chunk, seed = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
archs = nb201.from_index(np.random.default_rng(seed).choice(15625, n + chunk, replace=False))
out = {}
for name in proxies:
  b = data.minibatch("cifar10-bundled", get_proxy(name).batch_size or 64, seed=seed)
  engine.score("nb201", archs[:chunk], [name], b, seed=seed, chunk_size=chunk, mode="map")
  t0 = time.perf_counter()
  v = engine.score("nb201", archs[chunk:], [name], b, seed=seed, chunk_size=chunk, mode="map")[name]
  out[name] = {"s_per_arch": (time.perf_counter() - t0) / n, "scores": v.tolist()}
print("RESULT " + json.dumps(out))
"""


def run_setting(setting: str, a) -> dict:
  env = {k: v for k, v in os.environ.items() if k not in _CLEAR}
  env.update(SETTINGS[setting])
  env["PYTHONPATH"] = os.path.dirname(HERE) + os.pathsep + env.get("PYTHONPATH", "")
  procs = [subprocess.Popen([sys.executable, "-c", WORKER, a.proxies, str(a.archs), str(a.chunk),
                             str(a.seed)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for _ in range(a.procs)]
  results = []
  for p in procs:
    out, err = p.communicate()
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not line:
      raise SystemExit(f"worker ({setting}) failed:\n{err[-3000:]}")
    results.append(json.loads(line[0][7:]))
  return {name: {"s_per_arch": float(np.mean([r[name]["s_per_arch"] for r in results])),
                 "scores": results[0][name]["scores"]} for name in results[0]}


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--proxies", default="meco,az_expressivity,jacob_cov")
  ap.add_argument("--archs", type=int, default=16, help="timed architectures per worker")
  ap.add_argument("--chunk", type=int, default=8)
  ap.add_argument("--procs", type=int, default=2, help="workers started together per setting")
  ap.add_argument("--repeats", type=int, default=2)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default=os.path.join(HERE, "results", "blas_threads.json"))
  a = ap.parse_args(argv)
  best: dict = {}
  for r in range(a.repeats):
    order = list(SETTINGS) if r % 2 == 0 else list(SETTINGS)[::-1]
    for setting in order:
      res = run_setting(setting, a)
      for name, v in res.items():
        cur = best.setdefault(setting, {}).get(name)
        if cur is None or v["s_per_arch"] < cur["s_per_arch"]:
          best[setting][name] = v
        print(f"round {r} {setting:8s} {name:16s} {v['s_per_arch']:.3f} s/arch", flush=True)
  rows = {}
  for setting, per in best.items():
    for name, v in per.items():
      ref = best["default"][name]
      s, s0 = np.asarray(v["scores"]), np.asarray(ref["scores"])
      rows.setdefault(name, {})[setting] = {
          "s_per_arch": v["s_per_arch"], "ratio_to_default": v["s_per_arch"] / ref["s_per_arch"],
          "max_rel_diff_scores": float(np.max(np.abs(s - s0) / np.maximum(np.abs(s0), 1e-30)))}
  doc = {"setup": {"procs": a.procs, "archs": a.archs, "chunk": a.chunk, "repeats": a.repeats,
                   "seed": a.seed, "cpus": os.cpu_count(), "mode": "map",
                   "network": "NB201 C=16 N=5 32x32"}, "proxies": rows}
  with open(a.out, "w") as f:
    json.dump(doc, f, indent=1)
  print(f"{'proxy':16s} {'setting':8s} {'s/arch':>8s} {'x default':>9s} {'max rel diff':>12s}")
  for name, per in rows.items():
    for setting, v in per.items():
      print(f"{name:16s} {setting:8s} {v['s_per_arch']:8.3f} {v['ratio_to_default']:9.2f} "
            f"{v['max_rel_diff_scores']:12.2e}")


if __name__ == "__main__":
  main()
