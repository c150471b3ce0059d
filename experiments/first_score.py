"""Time to a first score from a fresh process, cold and from a warm compilation cache.

For each proxy, three fresh ``python -m jaxnas score --proxies P --archs IDX`` processes at the
default size (C=16, N=5, 32x32, the proxy's paper batch of the bundled CIFAR-10 sample), default
``--mode auto``: without a cache, then twice with ``JAXNAS_COMPILATION_CACHE`` set to a new folder
(the first run fills it: *cold*; the second reads it: *warm*). Wall seconds from spawning the
process to its exit (imports, data, tracing, compilation, one architecture, writing the file).
Results: ``experiments/results/first_score.json``.

  python experiments/first_score.py [--proxies grad_norm,nwot,synflow] [--arch 1459]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

OUT = "experiments/results/first_score.json"


def run(proxy, arch, cache, tmp):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("JAXNAS_COMPILATION_CACHE", None)
  if cache:
    env["JAXNAS_COMPILATION_CACHE"] = cache
  out = os.path.join(tmp, f"{proxy}-{time.time_ns()}.csv")
  t = time.perf_counter()
  r = subprocess.run([sys.executable, "-m", "jaxnas", "score", "--proxies", proxy, "--archs",
                      str(arch), "--out", out], env=env, capture_output=True, text=True,
                     timeout=900)
  dt = time.perf_counter() - t
  if r.returncode != 0:
    raise SystemExit(f"{proxy}: jaxnas score failed:\n{r.stderr[-2000:]}")
  return round(dt, 2)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--proxies", default="grad_norm,nwot,synflow")
  p.add_argument("--arch", type=int, default=1459)
  p.add_argument("--out", default=OUT)
  args = p.parse_args()
  res = {"command": "python experiments/first_score.py " + " ".join(sys.argv[1:]),
         "arch": args.arch, "proxies": {}}
  with tempfile.TemporaryDirectory() as tmp:
    for proxy in [s for s in args.proxies.split(",") if s]:
      cache = os.path.join(tmp, f"cache-{proxy}")
      row = {"no_cache_s": run(proxy, args.arch, None, tmp),
             "cold_cache_s": run(proxy, args.arch, cache, tmp),
             "warm_cache_s": run(proxy, args.arch, cache, tmp)}
      res["proxies"][proxy] = row
      print(proxy, row, flush=True)
  with open(args.out, "w") as f:
    json.dump(res, f, indent=1)


if __name__ == "__main__":
  main()
