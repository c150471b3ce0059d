"""neural-tangents as the oracle of jaxnas' own NTK: write its kernels in one environment, check in another.

neural-tangents 0.6.5 (its last release) imports only on jax 0.4.23, so the check runs in two steps
(``.ci/run`` does both, every CI run):

1. ``write OUT.npz`` in the *oracle environment* (jax 0.4.23, neural-tangents 0.6.5; jaxnas from
   this checkout on ``PYTHONPATH``): for fixed seeds, builds tiny NB201 networks (the discrete build
   of each architecture, with batch-statistics BN -- samples coupled -- and eval-mode BN), draws
   their parameters and a batch of bundled CIFAR-10 images, and stores the parameters, the inputs,
   the networks' outputs and neural-tangents' empirical NTK (``empirical_ntk_fn``: all three
   implementations in float64, Jacobian contraction in float32; full ``(B, B, K, K)`` kernel and
   the traced diagonal) and its infinite-width NNGP/NTK (``neural_tangents.stax``) of NB201 cell
   networks, in float64 and in float32.
2. ``check IN.npz`` in the main environment (current JAX): loads the same parameters and inputs,
   recomputes everything with jaxnas' own backend (``jaxnas.ntk.empirical`` by Jacobian contraction
   and by NTK-vector products, ``jaxnas.ntk.stax`` for the infinite-width kernels), prints the
   largest relative difference ``max |a - b| / max |b|`` per quantity, writes them to JSON
   (``--json``) and exits 1 when a float64 difference exceeds ``--tol`` (default 1e-5).

The oracle environment needs no TensorFlow: neural-tangents imports it only for its TensorFlow
bridge (``neural_tangents.experimental``), which ``write`` replaces by an empty module before the
import. Files are NPZ (no pickle); parameters are stored flat, one array per ``/``-joined path.
The NPZ is a build product, never committed.

  PYTHONPATH=. ORACLE_ENV/bin/python experiments/nt_oracle.py write /tmp/nt.npz
  python experiments/nt_oracle.py check /tmp/nt.npz --json experiments/results/nt_oracle.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types

import numpy as np

SEED = 0
ARCHS = ("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
         "avg_pool_3x3~2|",
         "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|avg_pool_3x3~1|"
         "nor_conv_1x1~2|")
BN_MODES = ("batch", "running")
NT_IMPLS = ("jacobian_contraction", "ntk_vector_products", "structured_derivatives")
OWN_IMPLS = ("jacobian_contraction", "ntk_vector_products")
# cells of the infinite-width check: convs only; pool/skip paths that meet twice (exact linear
# maps, neural-tangents' Aggregate); a cell with a zero node feeding on; every op once.
CELLS = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|"
         "nor_conv_3x3~2|",
         "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|"
         "avg_pool_3x3~2|",
         "|none~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|",
         "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|nor_conv_3x3~0|skip_connect~1|"
         "avg_pool_3x3~2|")
SIZE = dict(C=4, N=1)
BATCH, RES = 4, 8
INF_BATCH, INF_RES, INF_CELLS = 3, 8, 2


def _flat(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    key = f"{prefix}/{k}" if prefix else str(k)
    if isinstance(v, dict) or hasattr(v, "items"):
      out.update(_flat(v, key))
    else:
      out[key] = np.asarray(v)
  return out


def _unflat(flat, prefix):
  tree: dict = {}
  for k, v in flat.items():
    if not k.startswith(prefix + "/"):
      continue
    node = tree
    parts = k[len(prefix) + 1:].split("/")
    for p in parts[:-1]:
      node = node.setdefault(p, {})
    node[parts[-1]] = v
  return tree


def _network(arch, bn):
  from jaxnas.spaces import Network, get_space
  from jaxnas.spaces.nb201 import encode
  space = get_space("nb201")
  a = tuple(int(v) for v in encode(arch))
  return Network(space, space.model(**SIZE, bn=bn, fixed_arch=a), None)


def _batch():
  from jaxnas import data
  b = data.minibatch("cifar10-bundled", BATCH, seed=SEED)
  f = 32 // RES
  return np.asarray(b.x).reshape(BATCH, RES, f, RES, f, 3).mean((2, 4))


def _inf_inputs():
  import jax
  return np.asarray(jax.random.normal(jax.random.key(SEED + 1), (INF_BATCH, INF_RES, INF_RES, 3)))


def _kernels(net, variables, x, backend, impls, dtype):
  """Full and traced-diagonal empirical NTK per implementation, and the outputs."""
  import jax
  import jax.numpy as jnp
  from jaxnas.ntk import empirical
  cast = lambda t: jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), t)
  v, xx = cast(variables), jnp.asarray(x, dtype)
  out = {"logits": np.asarray(net.apply(v, xx))}
  for impl in impls:
    full = jax.jit(lambda vv, xb, impl=impl: empirical.network_ntk(
        net, vv, xb, trace_outputs=False, implementation=impl, backend=backend))(v, xx)
    diag = jax.jit(lambda vv, xb, impl=impl: empirical.network_ntk(
        net, vv, xb, diagonal=True, implementation=impl, backend=backend))(v, xx)
    out[f"full/{impl}"], out[f"diag/{impl}"] = np.asarray(full), np.asarray(diag)
  return out


def _infinite(x, backend, dtype):
  import jax.numpy as jnp
  from jaxnas.ntk import infinite
  out = {}
  xx = jnp.asarray(x, dtype)
  for c, cell in enumerate(CELLS):
    k = infinite.analytic_kernels(cell, xx, N=INF_CELLS, backend=backend)
    k2 = infinite.analytic_kernels(cell, xx[:2], xx[1:], N=INF_CELLS, backend=backend)
    out[f"inf{c}/nngp"], out[f"inf{c}/ntk"] = np.asarray(k.nngp), np.asarray(k.ntk)
    out[f"inf{c}/nngp12"], out[f"inf{c}/ntk12"] = np.asarray(k2.nngp), np.asarray(k2.ntk)
  return out


def _all(backend, impls, store, variables_by_net):
  """Every quantity of one backend in float64 and float32 (keys prefixed ``f64/``, ``f32/``)."""
  import jax.numpy as jnp
  from jaxnas import _compat
  x = store["x"]
  res = {}
  for prec, dtype in (("f64", jnp.float64), ("f32", jnp.float32)):
    with (_compat.enable_x64() if prec == "f64" else _nullcontext()):
      for (a, bn), v in variables_by_net.items():
        net = _network(ARCHS[a], bn)
        # float32: every jaxnas route, neural-tangents' Jacobian contraction only (time)
        use = impls if prec == "f64" or backend == "jaxnas" else impls[:1]
        for k, val in _kernels(net, v, x, backend, use, dtype).items():
          res[f"{prec}/net{a}/{bn}/{k}"] = val
      for k, val in _infinite(store["x_inf"], backend, dtype).items():
        res[f"{prec}/{k}"] = val
  return res


class _nullcontext:  # noqa: N801
  def __enter__(self):
    return self

  def __exit__(self, *a):
    return False


def write(path: str) -> None:
  # neural-tangents' TensorFlow bridge is the only part that imports TensorFlow; it is not used.
  sys.modules.setdefault("neural_tangents.experimental", types.ModuleType("neural_tangents.experimental"))
  import jax
  import neural_tangents as nt
  t0 = time.time()
  x = _batch()
  store = {"x": x, "x_inf": _inf_inputs()}
  variables_by_net = {}
  for a, arch in enumerate(ARCHS):
    for bn in BN_MODES:
      net = _network(arch, bn)
      v = jax.tree_util.tree_map(np.asarray, net.init(jax.random.key(SEED + a), x))
      variables_by_net[(a, bn)] = v
      for k, val in _flat(v).items():
        store[f"var/net{a}/{bn}/{k}"] = val
  results = _all("neural_tangents", NT_IMPLS, store, variables_by_net)
  store.update({f"nt/{k}": v for k, v in results.items()})
  store["meta"] = np.asarray(json.dumps({"jax": jax.__version__, "neural_tangents": nt.__version__,
                                         "archs": ARCHS, "cells": CELLS, "seed": SEED}))
  np.savez(path, **store)
  print(f"wrote {len(store)} arrays to {path} in {time.time() - t0:.1f} s "
        f"(jax {jax.__version__}, neural-tangents {nt.__version__})")


def rel_diff(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def compare(path: str) -> dict:
  """Relative differences of jaxnas' kernels to the stored neural-tangents ones."""
  import jax
  with np.load(path, allow_pickle=False) as f:
    store = {k: f[k] for k in f.files}
  meta = json.loads(str(store["meta"]))
  variables_by_net = {(a, bn): _unflat(store, f"var/net{a}/{bn}")
                      for a in range(len(ARCHS)) for bn in BN_MODES}
  ours = _all("jaxnas", OWN_IMPLS, store, variables_by_net)
  rows = {}
  for key, val in ours.items():
    prec, rest = key.split("/", 1)
    if "/full/" in key or "/diag/" in key:
      base, impl = key.rsplit("/", 1)
      kind = "empirical full" if "/full/" in key else "empirical traced diagonal"
      for nt_impl in NT_IMPLS:  # every jaxnas route against every neural-tangents one stored
        if f"nt/{base}/{nt_impl}" not in store:
          continue
        d = rel_diff(val, store[f"nt/{base}/{nt_impl}"])
        name = f"{prec} {kind} jaxnas:{impl}"
        rows[name] = max(rows.get(name, 0.0), d)
    elif key.endswith("/logits"):
      name = f"{prec} network outputs (same network on both stacks)"
      rows[name] = max(rows.get(name, 0.0), rel_diff(val, store[f"nt/{key}"]))
    else:
      name = f"{prec} infinite-width {rest.split('/')[1].rstrip('12')}"
      rows[name] = max(rows.get(name, 0.0), rel_diff(val, store[f"nt/{key}"]))
  return {"oracle": meta, "jax": jax.__version__, "max_rel_diff": rows}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  sub = p.add_subparsers(dest="cmd", required=True)
  w = sub.add_parser("write", help="in the oracle environment: neural-tangents' kernels to NPZ")
  w.add_argument("out")
  c = sub.add_parser("check", help="in the main environment: compare jaxnas' kernels")
  c.add_argument("npz")
  c.add_argument("--tol", type=float, default=1e-5, help="float64 tolerance (default 1e-5)")
  c.add_argument("--json", help="write the differences here")
  args = p.parse_args(argv)
  if args.cmd == "write":
    write(args.out)
    return 0
  res = compare(args.npz)
  worst = 0.0
  for name, d in sorted(res["max_rel_diff"].items()):
    print(f"{name:60s} {d:.2e}")
    if name.startswith("f64"):
      worst = max(worst, d)
  res["f64_worst"], res["tol"] = worst, args.tol
  if args.json:
    with open(args.json, "w") as f:
      json.dump(res, f, indent=1)
  ok = worst <= args.tol
  print(f"{'OK' if ok else 'FAIL'}: worst float64 relative difference {worst:.2e} "
        f"(tolerance {args.tol:.0e}); neural-tangents {res['oracle']['neural_tangents']} on jax "
        f"{res['oracle']['jax']} vs jaxnas on jax {res['jax']}")
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
