"""The DARTS depthwise convolution's backward pass on XLA:CPU, three implementations side by side.

For DARTS-sized inputs (batch 64, the three stages' shapes, the kernels sep_conv and dil_conv use)
times, each best of ``--repeats`` after compilation, in one process, alternating implementations:

* ``fwd``: the convolution; ``vjp_x`` / ``vjp_k``: its input / kernel cotangent (jitted VJP);
* ``sep3_grad``: the whole ``sep_conv_3x3`` op (ReLU, depthwise, pointwise, BN, twice), gradient
  with respect to its input and every parameter, as the gradient proxies need it.

Implementations: ``shifted`` (:func:`jaxnas.spaces.darts.layers.depthwise_shifted`, its custom
JVP), ``shifted_autodiff`` (the same forward, ``k*k`` slices of the padded input times per-channel
weights, differentiated by JAX itself: what the custom rule replaces), ``lax`` (the grouped
``lax.conv_general_dilated``). Results: ``experiments/results/bench_depthwise.json``.

  python experiments/bench_depthwise.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp

from jaxnas.spaces import ops as L
from jaxnas.spaces.darts import layers

OUT = "experiments/results/bench_depthwise.json"
#: (label, input shape, kernel, stride, padding, dilation)
CASES = [("sep3 32x32", (64, 32, 32, 32), 3, 1, 1, 1),
         ("sep5 32x32", (64, 32, 32, 32), 5, 1, 2, 1),
         ("dil5 32x32", (64, 32, 32, 32), 5, 1, 4, 2),
         ("sep3 stride 2", (64, 32, 32, 32), 3, 2, 1, 1),
         ("sep3 16x16x64", (64, 16, 16, 64), 3, 1, 1, 1)]


IMPLS = {"shifted": layers.depthwise_shifted, # the same forward without the custom rule, differentiated by JAX itself
         "shifted_autodiff": layers.depthwise_shifted.fun,
         "lax": lambda x, k, s, p, d: L.conv2d(x, k, s, p, d, groups=x.shape[-1])}


def _best(f, args, repeats):
  jax.block_until_ready(f(*args))
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(f(*args))
    best = min(best, time.perf_counter() - t)
  return best


def _sep3_grad(impl):
  def op(x, p):
    def dw_pw_bn(h, dw, pw, bn):
      h = IMPLS[impl](jax.nn.relu(h), dw, 1, 1, 1)
      return L.batch_norm(layers.pointwise(h, pw), bn["scale"], bn["bias"], None, "batch")[0]
    return dw_pw_bn(dw_pw_bn(x, p["dw1"], p["pw1"], p["bn1"]), p["dw2"], p["pw2"], p["bn2"])
  return jax.jit(jax.grad(lambda x, p: jnp.sum(op(x, p) ** 2), (0, 1)))


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--out", default=OUT)
  args = ap.parse_args()
  keys = jax.random.split(jax.random.key(0), 8)
  rows = []
  for label, shape, k, s, p, d in CASES:
    x = jax.random.normal(keys[0], shape)
    w = jax.random.normal(keys[1], (k, k, 1, shape[-1]))
    ct = jax.random.normal(keys[2], IMPLS["lax"](x, w, s, p, d).shape)
    row = {"case": label, "shape": list(shape), "k": k, "stride": s, "dilation": d}
    for name, fn in IMPLS.items():
      conv = lambda x, w, fn=fn: fn(x, w, s, p, d)
      row[name] = {
          "fwd_ms": 1e3 * _best(jax.jit(conv), (x, w), args.repeats),
          "vjp_x_ms": 1e3 * _best(jax.jit(lambda x, w, c: jax.vjp(lambda x: conv(x, w), x)[1](c)[0]),
                                  (x, w, ct), args.repeats),
          "vjp_k_ms": 1e3 * _best(jax.jit(lambda x, w, c: jax.vjp(lambda w: conv(x, w), w)[1](c)[0]),
                                  (x, w, ct), args.repeats)}
    rows.append(row)
    print(label, json.dumps({n: {m: round(v, 2) for m, v in row[n].items()} for n in IMPLS}),
          flush=True)
  c = 32
  x = jax.random.normal(keys[3], (64, 32, 32, c))
  bn = {"scale": jnp.ones(c), "bias": jnp.zeros(c)}
  params = {"dw1": jax.random.normal(keys[4], (3, 3, 1, c)), "pw1": 0.2 * jax.random.normal(
      keys[5], (1, 1, c, c)), "bn1": bn, "dw2": jax.random.normal(keys[6], (3, 3, 1, c)),
            "pw2": 0.2 * jax.random.normal(keys[7], (1, 1, c, c)), "bn2": bn}
  sep3 = {name: 1e3 * _best(_sep3_grad(name), (x, params), args.repeats) for name in IMPLS}
  print("sep_conv_3x3 gradient, ms:", json.dumps({n: round(v, 1) for n, v in sep3.items()}))
  out = {"setup": {"command": "python experiments/bench_depthwise.py "
                              f"--repeats {args.repeats}", "jax": jax.__version__,
                   "machine": f"{jax.local_device_count()} {jax.default_backend()} device(s), "
                              f"{platform.processor() or platform.machine()}"},
         "cases": rows, "sep_conv_3x3_grad_ms": sep3}
  with open(args.out, "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
  print("wrote", args.out)


if __name__ == "__main__":
  main()
