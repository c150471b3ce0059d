"""TE-NAS' Jacobian rows on NB101's unrolled network: pulled back vmapped or one at a time.

``tenas_ntk_cond`` needs the rows ``d(sum_c f_c(x_i))/d theta`` of the batched train-mode network
(B = 72 reverse passes). On the unrolled (eager) network, over the compact parameters, for one row
of ``../shared/data/nb101_naslib300.csv`` at benchmark size: one forward pass, then ``--rows``
basis vectors pulled back vmapped together, then the same vectors one by one (``--reps`` times,
alternating), and the largest difference between the two. On XLA:CPU a vmapped pullback makes
every kernel gradient a grouped convolution; ``jaxnas.proxies.tenas.rows_per_pullback`` takes one
row at a time there. Prints the figures and writes ``experiments/results/bench_tenas_rows.json``.

  python experiments/bench_tenas_rows.py [--row 2] [--rows 8] [--reps 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp

from jaxnas import data, spaces
from jaxnas.commands import _io

OUT = "experiments/results/bench_tenas_rows.json"


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--row", type=int, default=2)
  ap.add_argument("--rows", type=int, default=8)
  ap.add_argument("--reps", type=int, default=2)
  ap.add_argument("--csv", default="../shared/data/nb101_naslib300.csv")
  args = ap.parse_args()
  space = spaces.get_space("nb101")
  arch = _io.select_archs(space, None, args.csv, None, 0)[args.row]
  batch = data.minibatch("cifar10-bundled", 72, seed=0)
  net = spaces.network(space, arch, unrolled=True)
  cnet, cv = net.compact(net.init(jax.random.key(0), batch.x))
  f = lambda p: jnp.sum(cnet.apply({**cv, "params": p}, batch.x), axis=-1)
  t = time.perf_counter()
  y, pull = jax.vjp(f, cv["params"])
  jax.block_until_ready(y)
  out = {"row": args.row, "rows": args.rows, "forward_s": time.perf_counter() - t,
         "vmapped_s": [], "one_by_one_s": [],
         "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
  eye = jnp.eye(y.shape[0], dtype=y.dtype)[:args.rows]
  for _ in range(args.reps):
    t = time.perf_counter()
    g = jax.block_until_ready(jax.vmap(lambda e: pull(e)[0])(eye))
    out["vmapped_s"].append(time.perf_counter() - t)
    t = time.perf_counter()
    gs = jax.block_until_ready([pull(e)[0] for e in eye])
    out["one_by_one_s"].append(time.perf_counter() - t)
    print(f"vmapped {out['vmapped_s'][-1]:.1f} s, one by one {out['one_by_one_s'][-1]:.1f} s",
          flush=True)
  out["max_abs_diff"] = max(
      float(jnp.max(jnp.abs(a[i] - b)))
      for i in range(args.rows)
      for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(gs[i])))
  print(json.dumps(out, indent=1))
  with open(OUT, "w") as fh:
    json.dump(out, fh, indent=1)


if __name__ == "__main__":
  main()
