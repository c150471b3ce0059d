"""Every proxy on every space that supports it, on tiny networks: finite, deterministic, chunking-
independent (the per-space half of the proxy contract; the suite runs it for NB201 on every proxy
and for DARTS on a cheap sample, since compiling all DARTS programs takes minutes).

For each space and each proxy in ``supported_proxies(space)``: two architectures scored with one
chunk of 2 and twice with chunks of 1 (``mode='map'``; ``'eager'`` on a masked space such as
NB101, and for a proxy needing what only the unrolled build has, such as the ReLU probe of NB101
and DARTS or NB101's gates: ``SearchSpace.unrolled_only``); reports the scores, whether they are
finite, the largest relative difference, and the wall seconds (compilation included). Writes
``experiments/results/space_contract.json``.

  python experiments/space_contract.py                    # every space
  python experiments/space_contract.py --spaces darts --proxies synflow,grad_norm
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

from jaxnas import data, engine, spaces
from jaxnas.proxies import get_proxy, is_pooled, supported_proxies

TINY = {"nb201": dict(C=4, N=1), "darts": dict(C=4, L=3),
        "nb101": dict(stem_channels=8, num_stacks=2, modules_per_stack=1)}
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "space_contract.json")


def check(space, name, batch, config):
  archs = np.asarray(space.sample(jax.random.key(2), 2))
  t0 = time.perf_counter()
  unrolled_only = set(get_proxy(name).needs) & set(space.unrolled_only)
  mode = "eager" if (space.masked or unrolled_only) else "map"
  a = engine.score(space, archs, [name], batch, config=config, chunk_size=2, mode=mode)[name]
  b = engine.score(space, archs, [name], batch, config=config, chunk_size=1, mode=mode)[name]
  c = engine.score(space, archs, [name], batch, config=config, chunk_size=1, mode=mode)[name]
  rel = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))
  return dict(scores=[float(v) for v in a], finite=bool(np.all(np.isfinite(a))),
              deterministic=bool(np.array_equal(b, c)), max_rel_diff_chunking=rel,
              seconds=time.perf_counter() - t0)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--spaces", default=",".join(spaces.list_spaces()))
  ap.add_argument("--proxies", default="", help="comma-separated (default: all supported)")
  ap.add_argument("--out", default=OUT)
  args = ap.parse_args(argv)
  b = data.minibatch("cifar10-bundled", 16, seed=0)
  x = b.x.reshape(16, 8, 4, 8, 4, 3).mean((2, 4))
  batch = data.Batch(x, b.y)
  doc = {}
  for s in args.spaces.split(","):
    space = spaces.get_space(s)
    names = [p for p in supported_proxies(space) if not is_pooled(p)]   # pooled: components
    if args.proxies:
      names = [p for p in args.proxies.split(",") if p in names]
    doc[s] = {}
    for name in names:
      try:
        r = check(space, name, batch, TINY.get(s, {}))
      except Exception as e:  # noqa: BLE001 - recorded, the run goes on
        r = dict(error=f"{type(e).__name__}: {str(e)[:300]}")
      doc[s][name] = r
      print(s, name, json.dumps(r), flush=True)
  bad = [(s, n) for s, d in doc.items() for n, r in d.items()
         if "error" in r or not r["finite"] or not r["deterministic"]
         or r["max_rel_diff_chunking"] > 1e-4]
  doc["failures"] = bad
  with open(args.out, "w") as f:
    json.dump(doc, f, indent=1)
  print("failures:", bad or "none")


if __name__ == "__main__":
  main()
