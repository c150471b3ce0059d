"""HNAS' per-sample shares: the equal-copies route against one parameter copy per sample.

``hnas_trace`` / ``hnas_cond`` need ``G G^T`` of the per-sample shares of a batch of 64 at full size
(C=16, N=5, 32x32). Both routes run the NB201 shared build (the architecture an input, as the
engine's ``map`` program runs it) compiled once per route, then score the same architectures one
by one, alternating routes so that both see the same load; per-architecture seconds exclude
compilation (reported apart). Also reports the largest relative difference of the two kernels'
traces and condition numbers. Results: ``experiments/results/bench_shares.json``.

  python experiments/bench_shares.py [--n 8] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import data, spaces
from jaxnas.ntk import per_sample
from jaxnas.ntk.spectrum import condition_number
from jaxnas.spaces import params as P
from jaxnas.spaces.nb201 import NB201Net

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "bench_shares.json")


def kernel_fn(space, batch, equal_copies):
  cot = jax.nn.one_hot(batch.y, 10)

  @jax.jit
  def fn(arch, key):
    net = spaces.Network(space, NB201Net(), arch)
    v = net.init(key, batch.x)
    sel = P.select(v["params"], P.WEIGHTS_AND_BIASES)
    theta = per_sample.gram(per_sample.network_grads(net, v, batch.x, cot, "shares", select=sel,
                                                     equal_copies=equal_copies))
    return jnp.sqrt(jnp.trace(theta) / theta.shape[0]), condition_number(theta)
  return fn


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--n", type=int, default=8, help="architectures (uniform, seed 0)")
  ap.add_argument("--batch", type=int, default=64)
  args = ap.parse_args(argv)
  space = spaces.get_space("nb201")
  archs = np.asarray(space.sample(jax.random.key(0), args.n), np.int32)
  batch = data.minibatch("cifar10-bundled", args.batch, seed=0)
  routes = {"equal_copies": kernel_fn(space, batch, True),
            "copy_per_sample": kernel_fn(space, batch, False)}
  key = jax.random.key(0)
  compile_s, secs, vals = {}, {r: [] for r in routes}, {r: [] for r in routes}
  for r, fn in routes.items():
    t = time.perf_counter()
    jax.block_until_ready(fn(archs[0], key))
    compile_s[r] = round(time.perf_counter() - t, 1)
  for a in archs:
    for r, fn in routes.items():
      t = time.perf_counter()
      m, k = jax.block_until_ready(fn(a, key))
      secs[r].append(time.perf_counter() - t)
      vals[r].append((float(m), float(k)))
  per = {r: float(np.median(s)) for r, s in secs.items()}
  a, b = np.asarray(vals["equal_copies"]), np.asarray(vals["copy_per_sample"])
  rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-30)
  res = dict(n=args.n, batch=args.batch, config="C=16, N=5, 32x32",
             median_seconds_per_arch={r: round(v, 3) for r, v in per.items()},
             speedup=round(per["copy_per_sample"] / per["equal_copies"], 2),
             first_call_seconds=compile_s,
             max_rel_diff={"hnas_trace": float(rel[:, 0].max()), "hnas_cond": float(rel[:, 1].max())},
             load=os.getloadavg(), jax=jax.__version__, python=platform.python_version(),
             command="python experiments/bench_shares.py " + f"--n {args.n} --batch {args.batch}")
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  with open(OUT, "w") as f:
    json.dump(res, f, indent=1)
  print(json.dumps(res, indent=1))


if __name__ == "__main__":
  main()
