"""Joint passes against one pass per proxy: the same architectures, seed and minibatch.

Scores ``--n`` uniform architectures of a space (default NB201 full size, ``--space darts --config
C=32,L=8`` for the DARTS table's network) with each group's proxies one by one and then together
(:mod:`jaxnas.proxies.joint`), in one process, steady state: the first architecture of each run is
scored once beforehand, so compilation is excluded. Prints and writes, per group, seconds per
architecture alone (summed over the members) and together, their ratio, and the largest relative
difference between the two ways' scores, to ``experiments/results/bench_joint[_<space>].json``.

  python experiments/bench_joint.py [--n 8] [--groups "grad_norm,snip,plain;az_expressivity,..."]
  python experiments/bench_joint.py --space darts --config C=32,L=8 --n 2 \
    --groups grad_norm,snip,plain
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import numpy as np

from jaxnas import data, engine
from jaxnas.commands.score import parse_config
from jaxnas.engine import scoring
from jaxnas.spaces import get_space

HERE = os.path.dirname(os.path.abspath(__file__))


def timed(space, archs, names, batch, config, mode):
  """(seconds per architecture, scores): one warm-up architecture, then the rest timed."""
  kw = dict(config=config, chunk_size=1, mode=mode, seed=0)
  engine.score(space, archs[:1], names, batch, **kw)
  t0 = time.perf_counter()
  out = engine.score(space, archs[1:], names, batch, **kw)
  return (time.perf_counter() - t0) / (len(archs) - 1), out


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--space", default="nb201")
  ap.add_argument("--config", default=None, help="module configuration, e.g. C=32,L=8")
  ap.add_argument("--n", type=int, default=8, help="architectures timed (plus one warm-up)")
  ap.add_argument("--groups", default="grad_norm,snip,plain;az_expressivity,az_progressivity")
  ap.add_argument("--mode", default="auto")
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args(argv)
  space = get_space(args.space)
  config = parse_config(args.config, space) if args.config else None
  archs = np.asarray(space.sample(jax.random.key(args.seed), args.n + 1))
  out_path = os.path.join(HERE, "results", "bench_joint" + (
      "" if args.space == "nb201" else f"_{args.space}") + ".json")
  results = {"space": args.space, "config": config, "n": args.n, "mode": args.mode,
             "jax": jax.__version__, "machine": platform.processor() or platform.machine(),
             "groups": []}
  for spec in args.groups.split(";"):
    names = spec.split(",")
    batch = scoring.paper_batches(names, lambda n: data.minibatch("cifar10-bundled", n, seed=0))
    assert scoring.group_plan(names, batch) == [tuple(names)], f"{names} do not form one group"
    alone, scores = 0.0, {}
    for name in names:
      dt, out = timed(space, archs, [name], batch, config, args.mode)
      alone += dt
      scores[name] = out[name]
    together, joint = timed(space, archs, names, batch, config, args.mode)
    diff = max(float(np.max(np.abs(joint[n] - scores[n]) / np.maximum(np.abs(scores[n]), 1e-30)))
               for n in names)
    row = {"group": names, "alone_s_per_arch": alone, "joint_s_per_arch": together,
           "speedup": alone / together, "max_rel_diff": diff}
    results["groups"].append(row)
    print(f"{'+'.join(names)}: alone {alone:.2f} s/arch (sum), joint {together:.2f} s/arch, "
          f"{alone / together:.2f}x; max rel diff {diff:.1e}", flush=True)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  main()
