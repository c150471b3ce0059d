"""What the vmappable NB201 build costs over the discrete network (FLOPs and wall time).

Three ways to run an architecture whose ops are an input:

* ``discrete``: ``NB201Net(fixed_arch=...)``, compiled once per architecture (the reference cost);
* ``switch``: the shared build inside ``jax.lax.map`` over architectures: each edge runs only its
  chosen op (``lax.switch``), one compilation for all architectures;
* ``select``: the shared build under ``jax.vmap`` over architectures: every op of every edge runs
  and the chosen output is selected.

Prints and writes ``experiments/results/build_overhead.json``: MACs per image of each way, and the
median steady-state seconds per architecture of a forward pass and of a forward+backward pass
(gradient w.r.t. all parameters) at the given batch size.

  python experiments/build_overhead.py [--batch 64] [--archs 8] [--repeats 3]
"""

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces import nb201


def _time(f, *args, repeats=3):
  jax.block_until_ready(f(*args))
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(f(*args))
    ts.append(time.perf_counter() - t0)
  return float(np.median(ts))


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--archs", type=int, default=8)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--out", default="experiments/results/build_overhead.json")
  a = p.parse_args()

  key = jax.random.key(0)
  x = jax.random.normal(key, (a.batch, 32, 32, 3))
  net = nb201.NB201Net()
  v = jax.jit(net.init)(key, x, jnp.zeros(6, jnp.int32))
  rng = np.random.default_rng(0)
  idx = np.sort(rng.choice(15625, a.archs, replace=False))
  archs = nb201.from_index(idx)

  loss = lambda p, arch: jnp.sum(jnp.sin(net.apply({**v, "params": p}, x, arch)))
  res = {"batch": a.batch, "indices": idx.tolist(), "device": str(jax.devices()[0])}

  # switch: lax.map over architectures (per-architecture time = total / n)
  fwd_map = jax.jit(lambda A: jax.lax.map(lambda arch: net.apply(v, x, arch), A))
  grad_map = jax.jit(lambda A: jax.lax.map(lambda arch: jax.grad(loss)(v["params"], arch), A))
  t0 = time.perf_counter(); jax.block_until_ready(fwd_map(archs)); c_fm = time.perf_counter() - t0
  t0 = time.perf_counter(); jax.block_until_ready(grad_map(archs)); c_gm = time.perf_counter() - t0
  res["switch"] = {"fwd_s": _time(fwd_map, archs, repeats=a.repeats) / a.archs,
                   "fwdbwd_s": _time(grad_map, archs, repeats=a.repeats) / a.archs,
                   "compile_fwd_s": c_fm, "compile_fwdbwd_s": c_gm}
  # select: vmap over architectures
  fwd_vmap = jax.jit(jax.vmap(lambda arch: net.apply(v, x, arch)))
  grad_vmap = jax.jit(jax.vmap(lambda arch: jax.grad(loss)(v["params"], arch)))
  res["select"] = {"fwd_s": _time(fwd_vmap, archs, repeats=a.repeats) / a.archs,
                   "fwdbwd_s": _time(grad_vmap, archs, repeats=a.repeats) / a.archs}
  # discrete: one network per architecture
  fwd_d, grad_d, comp_d = [], [], []
  for arch in archs:
    d = nb201.NB201Net(fixed_arch=tuple(int(o) for o in arch))
    vd = {k: nb201.discrete_params(t, arch) for k, t in v.items()}
    fd = jax.jit(lambda vd: d.apply(vd, x))
    gd = jax.jit(jax.grad(lambda p, vd: jnp.sum(jnp.sin(d.apply({**vd, "params": p}, x)))))
    t0 = time.perf_counter(); jax.block_until_ready(gd(vd["params"], vd))
    comp_d.append(time.perf_counter() - t0)
    fwd_d.append(_time(fd, vd, repeats=a.repeats))
    grad_d.append(_time(gd, vd["params"], vd, repeats=a.repeats))
  res["discrete"] = {"fwd_s": float(np.mean(fwd_d)), "fwdbwd_s": float(np.mean(grad_d)),
                     "compile_fwdbwd_s_per_arch": float(np.mean(comp_d))}

  macs = nb201.count_flops(archs, convention="macs").astype(float)
  none = nb201.count_flops(np.zeros(6, int), convention="macs")
  per_edge_all = (nb201.count_flops(np.full(6, 2), convention="macs") - none
                  + nb201.count_flops(np.full(6, 3), convention="macs") - none) / 6
  res["macs_per_image_M"] = {"discrete": float(macs.mean() / 1e6), "switch": float(macs.mean() / 1e6),
                             "select": float((none + 6 * per_edge_all) / 1e6)}
  for k in ("switch", "select"):
    res[k]["fwd_ratio"] = res[k]["fwd_s"] / res["discrete"]["fwd_s"]
    res[k]["fwdbwd_ratio"] = res[k]["fwdbwd_s"] / res["discrete"]["fwdbwd_s"]
  os.makedirs(os.path.dirname(a.out), exist_ok=True)
  with open(a.out, "w") as f:
    json.dump(res, f, indent=2)
  print(json.dumps(res, indent=2))


if __name__ == "__main__":
  main()
