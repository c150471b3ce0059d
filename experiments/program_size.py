"""How much memory a proxy's compiled scorer needs, before running it.

What mode ``'auto'`` compares with the device's memory (``jaxnas.engine.memory``): XLA's memory
analysis of the program (arguments + outputs + temporaries) for one architecture, compiled and
not run. Use it to plan a long run (will ``map`` fit beside another job?)::

  python experiments/program_size.py --space darts --proxy zico --config C=32,L=8 --batch 256

Results: ``experiments/results/program_size.json``, one entry per (space, proxy, config, batch,
mode), updated in place.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

CSV = {"darts": "nb301_naslib500.csv", "nb101": "nb101_naslib300.csv"}
SHARED = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "shared", "data")
OUT = os.path.join(os.path.dirname(__file__), "results", "program_size.json")


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--space", default="darts", choices=("darts", "nb101", "nb201"))
  p.add_argument("--proxy", default="grasp")
  p.add_argument("--config", default="", help="module configuration, e.g. C=32,L=8")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--mode", default="map", choices=("map", "vmap"))
  a = p.parse_args()
  import jax
  from jaxnas import data, get_space
  from jaxnas.commands import _io, score as score_cmd
  from jaxnas.engine import memory, scoring
  from jaxnas.proxies import get_proxy
  space = get_space(a.space)
  archs = (_io.select_archs(space, None, os.path.join(SHARED, CSV[a.space]), None, 0)[:1]
           if a.space in CSV else _io.select_archs(space, None, None, 1, 0))
  config = score_cmd.parse_config(a.config or None, space)
  fn = scoring.make_score_fn(space, get_proxy(a.proxy), config, a.mode)
  batch = data.minibatch(batch_size=a.batch, seed=0)
  t = time.perf_counter()
  compiled = fn.lower(archs, np.zeros(1, np.int32), batch, jax.random.key(0)).compile()
  need = memory.program_bytes(compiled)
  row = {"space": a.space, "proxy": a.proxy, "config": a.config, "batch": a.batch,
         "mode": a.mode, "program_gib": None if need is None else need / 2**30,
         "compile_s": time.perf_counter() - t, "jax": jax.__version__}
  print(json.dumps(row))
  rows = json.load(open(OUT)) if os.path.exists(OUT) else []
  key = lambda r: (r["space"], r["proxy"], r["config"], r["batch"], r["mode"])
  rows = [r for r in rows if key(r) != key(row)] + [row]
  from jaxnas._files import atomic
  with atomic(OUT) as f:     # a kill mid-write keeps the previous file
    json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
