"""jaxnas against PyTorch: the same NB201 networks and zero-cost proxies, timed side by side.

For each proxy (default: the eleven both sides implement: params, flops, synflow, grad_norm, snip,
grasp, fisher, jacob_cov, plain, l2_norm, nwot; and ``grad_norm+snip+plain``, the three scored
together: jaxnas' one pass sharing the gradient against PyTorch's three, per member agreement,
the lowest reported), on ``--archs`` NB201 architectures (a seeded
uniform sample of benchmark indices) and one minibatch of the bundled CIFAR-10 sample
(``jaxnas.data.minibatch("cifar10-bundled", --batch, seed=--seed)``, average-pooled to 16x16 with
``--size tiny``):

* **jaxnas**: ``jaxnas.engine.score(...)`` called once per architecture with the default
  ``mode='auto'`` (what it resolved to is recorded), variables initialised inside the call from
  ``fold_in(key(seed), benchmark_index)``: wall and CPU seconds per call, so initialisation is
  included; the first call of a proxy (tracing and compilation) is reported apart; before the timed
  architectures jaxnas scores ``--warmup`` others, untimed (its time, compilation included, is the
  table's *warm-up s* column), since the eager executor compiles its blocks once per op mix.
* **PyTorch** (``experiments/torch_nb201.py``, an independent implementation of the network and of
  jaxnas' proxy definitions): per architecture, building the model with PyTorch's own default
  initialisation plus the proxy (*native pass*, the timed figure), then the same with jaxnas'
  weights of that architecture copied in (*transfer pass*, also timed, reported in the JSON).
* **Correctness**: the transfer pass scores the very networks jaxnas scored (same weights, batch,
  BN mode, float precision): the Spearman rank agreement of the two implementations' scores over
  the architectures and their largest relative difference ``|a - b| / max(|a|, |b|)``. The native
  pass's scores (other random weights) are compared too (``rho_native``), to show how much the
  ranking moves with the initialisation alone.

The two sides run as two worker processes started by this script (JSON lines over pipes), one
after the other per proxy, never at the same time: ``--jax-python`` (an environment with jaxnas)
and ``--torch-python`` (one with ``torch`` and ``numpy``; PyTorch is *not* a dependency of the
library: it is the benchmark-only extra ``pip install jaxnas[bench]``, best in its own virtual
environment, e.g. a CPU wheel). The jaxnas worker writes the batch and each architecture's
weights as NPZ files (no pickle) into a temporary folder that the PyTorch worker reads.
PyTorch runs with ``torch.set_num_threads(--threads)`` (default 2).

Results: a per-proxy table on stdout, and ``experiments/results/bench_vs_pytorch.json``
(``bench_vs_pytorch_tiny.json`` with ``--size tiny``), written after every proxy; a rerun with the
same setup skips the proxies already there (``--redo`` recomputes the named ones, ``--fresh``
starts the file anew).

  python experiments/bench_vs_pytorch.py --torch-python /path/to/torch-env/bin/python
      [--archs 16] [--proxies grad_norm,snip] [--size full|tiny] [--batch 64] [--seed 0]

Sizes: ``full`` is NB201's network (C=16, N=5, 32x32); ``tiny`` (C=4, N=1, 16x16) is for quick
checks of the agreement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROXIES = ("params", "flops", "synflow", "grad_norm", "snip", "grasp", "fisher", "jacob_cov",
           "plain", "l2_norm", "nwot", "grad_norm+snip+plain")
#: ``a+b+c``: the proxies scored together, as a user asking for all of them gets them: jaxnas in one
#: pass sharing the gradient (``jaxnas.proxies.joint``), PyTorch one after the other (as the
#: reference's ``find_measures`` computes each measure with its own forward and backward).
SIZES = {"full": dict(C=16, N=5, resolution=32), "tiny": dict(C=4, N=1, resolution=16)}
NUM_ARCHS = 15625


def spearman(a, b) -> float:
  """Spearman's rho with average ranks for ties (NaN if either side is constant)."""
  def rank(v):
    v = np.asarray(v, np.float64)
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(len(v), dtype=np.float64)
    for u in np.unique(v):   # average ranks of ties
      m = v == u
      if m.sum() > 1:
        r[m] = r[m].mean()
    return r
  ra, rb = rank(a), rank(b)
  if len(ra) < 2 or np.std(ra) == 0 or np.std(rb) == 0:
    return float("nan")
  return float(np.corrcoef(ra, rb)[0, 1])


def rel_diff(a, b) -> np.ndarray:
  """``|a - b| / max(|a|, |b|)`` elementwise (0 where both are 0)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  den = np.maximum(np.abs(a), np.abs(b))
  return np.where(den > 0, np.abs(a - b) / np.where(den > 0, den, 1.0), 0.0)


def _timed(fn):
  t, c = time.perf_counter(), time.process_time()
  out = fn()
  return out, time.perf_counter() - t, time.process_time() - c


# --------------------------------------------------------------------- workers


def _serve(handle):
  """Worker loop: one JSON command per stdin line, one JSON reply per line on the real stdout
  (everything else the worker or its libraries print goes to stderr)."""
  proto = os.fdopen(os.dup(1), "w")
  os.dup2(2, 1)
  sys.stdout = sys.stderr
  for line in sys.stdin:
    cmd = json.loads(line)
    if cmd.get("cmd") == "quit":
      break
    try:
      reply = handle(cmd)
    except Exception:  # reported to the driver, which records it and goes on
      reply = {"error": traceback.format_exc()}
    proto.write(json.dumps(reply) + "\n")
    proto.flush()


def jax_worker(args):
  import jax
  import jax.numpy as jnp

  from jaxnas import data
  from jaxnas._compat import enable_x64
  from jaxnas.commands.score import downsample
  from jaxnas.engine import scoring
  from jaxnas.proxies import get_proxy, joint
  from jaxnas.proxies.synflow import NO_BN
  from jaxnas.spaces import Network, get_space, ops
  from jaxnas.spaces.nb201 import discrete_params

  size = SIZES[args.size]
  config = {"C": size["C"], "N": size["N"]}
  space = get_space("nb201")
  batch = downsample(data.minibatch("cifar10-bundled", args.batch, seed=args.seed),
                     size["resolution"])
  np.savez(os.path.join(args.tmp, "batch.npz"), x=np.asarray(batch.x, np.float32),
           y=np.asarray(batch.y, np.int32))
  key = jax.random.key(args.seed)

  def export(idx, arch, variant):
    """jaxnas' variables of architecture ``idx`` as the engine draws them, mapped onto the
    discrete network, flat ``params/<layer>/<leaf>`` arrays in an NPZ."""
    path = os.path.join(args.tmp, f"w_{variant}_{idx}.npz")
    if os.path.exists(path):
      return path
    k_init, k_proxy = jax.random.split(jax.random.fold_in(key, np.int32(idx)))
    arch_j = jnp.asarray(arch, jnp.int32)
    if variant == "default":   # scoring._one_fn / EagerScoreFn: float32 draws from k_init
      with ops.float32_draws():
        v = Network(space, space.model(**config), arch_j).init(k_init, batch.x)
    else:                      # proxies.synflow._synflow: the NO_BN variant, float64, k_proxy
      with enable_x64():
        x = jnp.ones((1,) + tuple(batch.x.shape[1:]), jnp.float64)
        v = Network(space, space.model(**config, **NO_BN), arch_j).init(k_proxy, x)
        v = jax.tree_util.tree_map(np.asarray, v)
    flat = {}

    def walk(prefix, tree):
      for k, val in tree.items():
        if hasattr(val, "items"):
          walk(f"{prefix}/{k}", val)
        else:
          flat[f"{prefix}/{k}"] = np.asarray(val)

    walk("params", discrete_params(v["params"], np.asarray(arch)))
    np.savez(path, **flat)
    return path

  def handle(cmd):
    if cmd["cmd"] == "archs":
      return {"archs": np.asarray(space.from_index(np.asarray(cmd["idx"]))).tolist(),
              "jax": jax.__version__, "backend": jax.default_backend(),
              "batch": os.path.join(args.tmp, "batch.npz")}
    name, idx = cmd["proxy"], cmd["idx"]
    members = name.split("+")
    archs = np.asarray(space.from_index(np.asarray(idx)), np.int32)
    scores, wall, cpu = [], [], []
    for a in archs:
      out, w, c = _timed(lambda: scoring.score(space, a[None], members, batch, seed=args.seed,
                                               config=config, chunk_size=1,
                                               mode=args.jax_mode))
      got = [float(out[m][0]) for m in members]
      scores.append(got if len(members) > 1 else got[0])
      wall.append(w)
      cpu.append(c)
    proxy = get_proxy(name) if len(members) == 1 else joint.joint(tuple(members))
    info = dict(scoring.make_score_fn(space, proxy, config, args.jax_mode).info)
    variant = "synflow" if name == "synflow" else "default"
    weights = None
    if name not in ("params", "flops"):   # these read no weights
      weights = [export(i, a, variant) for i, a in zip(idx, archs)]
    return {"scores": scores, "wall": wall, "cpu": cpu, "weights": weights,
            "mode": info.get("mode")}

  _serve(handle)


def torch_worker(args):
  import torch
  sys.path.insert(0, HERE)
  import torch_nb201 as T

  torch.set_num_threads(args.threads)
  size = SIZES[args.size]
  C, N = size["C"], size["N"]
  b = np.load(args.batch_file)
  x = torch.from_numpy(np.ascontiguousarray(b["x"].transpose(0, 3, 1, 2)))
  y = torch.from_numpy(b["y"].astype(np.int64))

  def handle(cmd):
    if cmd["cmd"] == "hello":
      return {"torch": torch.__version__, "threads": torch.get_num_threads()}
    name, idx, archs = cmd["proxy"], cmd["idx"], cmd["archs"]
    members = name.split("+")

    def score(a, weights=None):   # several proxies: one after the other, each its own model
      got = [float(T.score(m, a, C, N, x, y, weights=weights)) for m in members]
      return got if len(members) > 1 else got[0]

    res = {"scores": [], "wall": [], "cpu": [], "t_scores": [], "t_wall": [], "t_cpu": []}
    for i, a in zip(idx, archs):   # native pass: build with PyTorch's init + proxy
      torch.manual_seed(args.seed * 100003 + int(i))
      s, w, c = _timed(lambda: score(a))
      res["scores"].append(s)
      res["wall"].append(w)
      res["cpu"].append(c)
    for k, (i, a) in enumerate(zip(idx, archs)):   # transfer pass: jaxnas' weights
      weights = None
      if cmd.get("weights"):
        with np.load(cmd["weights"][k]) as f:
          weights = {key: f[key] for key in f.files}
      s, w, c = _timed(lambda: score(a, weights))
      res["t_scores"].append(s)
      res["t_wall"].append(w)
      res["t_cpu"].append(c)
    return res

  _serve(handle)


class Worker:
  def __init__(self, argv, env=None):
    self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=ROOT, env=env)

  def ask(self, **cmd):
    self.p.stdin.write(json.dumps(cmd) + "\n")
    self.p.stdin.flush()
    line = self.p.stdout.readline()
    if not line:
      raise RuntimeError(f"worker {self.p.args[:3]} exited (code {self.p.wait()})")
    return json.loads(line)

  def close(self):
    try:
      self.p.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
      self.p.stdin.close()
    except (BrokenPipeError, OSError):
      pass
    self.p.wait(timeout=60)


# ----------------------------------------------------------------------- driver


def _steady(t):
  """Median seconds per architecture after the first (the first: compilation, warm-up)."""
  t = list(t)
  return float(np.median(t[1:] if len(t) > 1 else t))


def _agreement(a, b) -> float:
  """Spearman of two score vectors; for proxies scored together (columns), the lowest of theirs."""
  if a.ndim == 1:
    return spearman(a, b)
  return min(spearman(a[:, k], b[:, k]) for k in range(a.shape[1]))


def summarise(name, jx, th, load):
  a, b, t = (np.asarray(v, np.float64) for v in (jx["scores"], th["scores"], th["t_scores"]))
  fin = np.isfinite(a) & np.isfinite(t)
  if fin.ndim > 1:   # an architecture counts when every member's score is finite
    fin = fin.all(axis=1)
  rd = rel_diff(a[fin], t[fin])
  row = {
      "jaxnas": {"mode": jx["mode"], "first_s": jx["wall"][0], "s_per_arch": _steady(jx["wall"]),
                 "cpu_s_per_arch": _steady(jx["cpu"]), "total_s": float(np.sum(jx["wall"])),
                 "wall": jx["wall"], "cpu": jx["cpu"], "scores": jx["scores"],
                 "warmup_s": jx.get("warmup_s")},
      "pytorch": {"first_s": th["wall"][0], "s_per_arch": _steady(th["wall"]),
                  "cpu_s_per_arch": _steady(th["cpu"]), "total_s": float(np.sum(th["wall"])),
                  "transfer_s_per_arch": _steady(th["t_wall"]),
                  "wall": th["wall"], "cpu": th["cpu"], "scores_native": th["scores"],
                  "scores_transfer": th["t_scores"], "transfer_wall": th["t_wall"]},
      "spearman": _agreement(a[fin], t[fin]),
      "max_rel_diff": float(rd.max()) if rd.size else None,
      "median_rel_diff": float(np.median(rd)) if rd.size else None,
      "finite": int(fin.sum()),
      "spearman_native": _agreement(a, b) if np.isfinite(a).all() and np.isfinite(b).all()
      else None,
      "loadavg": load,
  }
  js, ts = row["jaxnas"]["s_per_arch"], row["pytorch"]["s_per_arch"]
  row["ratio"] = js / ts if ts > 0 else None
  jc, tc = row["jaxnas"]["cpu_s_per_arch"], row["pytorch"]["cpu_s_per_arch"]
  row["cpu_ratio"] = jc / tc if tc > 0 else None
  for k in ("spearman", "spearman_native"):   # NaN (constant scores) as null in the JSON
    if row[k] is not None and not np.isfinite(row[k]):
      row[k] = None
  return row


def _fmt(v, spec=".3g"):
  if v is None or (isinstance(v, float) and not np.isfinite(v)):
    return "-" if v is None else str(v)
  return format(v, spec)


def table(results) -> str:
  lines = ["| proxy | jaxnas mode | jaxnas s/arch | PyTorch s/arch | ratio jaxnas/PyTorch | "
           "jaxnas CPU-s/arch | PyTorch CPU-s/arch | CPU ratio | jaxnas warm-up s | "
           "Spearman (same weights) | max rel. diff | Spearman (PyTorch own init) |",
           "|" + "---|" * 12]
  for name in sorted(results["proxies"]):
    r = results["proxies"][name]
    if "error" in r:
      lines.append(f"| {name} | error: {r['error'].strip().splitlines()[-1][:80]} |" + " |" * 10)
      continue
    j, t = r["jaxnas"], r["pytorch"]
    lines.append(
        f"| {name} | {j['mode']} | {_fmt(j['s_per_arch'])} | {_fmt(t['s_per_arch'])} | "
        f"{_fmt(r['ratio'], '.2f')} | {_fmt(j['cpu_s_per_arch'])} | {_fmt(t['cpu_s_per_arch'])} | "
        f"{_fmt(r['cpu_ratio'], '.2f')} | {_fmt(j.get('warmup_s') or j['first_s'])} | "
        f"{_fmt(r['spearman'], '.4f')} | "
        f"{_fmt(r['max_rel_diff'], '.1e')} | {_fmt(r['spearman_native'], '.3f')} |")
  return "\n".join(lines)


def _save(path, results):
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(results, f, indent=1, sort_keys=True)
  os.replace(path + ".tmp", path)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--archs", type=int, default=16, help="architectures (seeded uniform sample)")
  p.add_argument("--indices", default="", help="comma-separated benchmark indices instead of "
                 "the sample (e.g. degenerate cells)")
  p.add_argument("--proxies", default=",".join(PROXIES), help="comma-separated")
  p.add_argument("--size", choices=sorted(SIZES), default="full")
  p.add_argument("--batch", type=int, default=64, help="images of the bundled CIFAR-10 sample")
  p.add_argument("--seed", type=int, default=0, help="architecture sample, batch, initialisation")
  p.add_argument("--jax-python", default=sys.executable,
                 help="interpreter with jaxnas (default: this one)")
  p.add_argument("--torch-python", default=sys.executable,
                 help="interpreter with torch and numpy (default: this one)")
  p.add_argument("--jax-mode", default="auto", choices=("auto", "map", "vmap", "hybrid", "eager"),
                 help="jaxnas.engine.score mode (default auto, what a user gets)")
  p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
  p.add_argument("--warmup", type=int, default=8,
                 help="architectures (another seeded sample) jaxnas scores per proxy before the "
                      "timed ones, not timed: the eager executor compiles its blocks' op mixes "
                      "on the first few architectures, once for a whole run (default 8; 0: none)")
  p.add_argument("--out", default=None, help="default experiments/results/bench_vs_pytorch"
                 "[_tiny].json")
  p.add_argument("--redo", action="store_true", help="recompute the named proxies")
  p.add_argument("--fresh", action="store_true", help="discard an existing results file")
  p.add_argument("--keep-tmp", action="store_true", help="keep the NPZ folder (weights, batch)")
  p.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
  p.add_argument("--tmp", help=argparse.SUPPRESS)
  p.add_argument("--batch-file", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.worker == "jax":
    return jax_worker(args)
  if args.worker == "torch":
    return torch_worker(args)

  names = [s for s in args.proxies.split(",") if s]
  bad = sorted(set(names) - set(PROXIES))
  if bad:
    p.error(f"proxies without a PyTorch implementation here: {bad}; choose from {PROXIES}")
  out = args.out or os.path.join(
      ROOT, "experiments", "results",
      "bench_vs_pytorch.json" if args.size == "full" else f"bench_vs_pytorch_{args.size}.json")
  if args.indices:
    idx = np.array([int(i) for i in args.indices.split(",") if i.strip()])
    if idx.min() < 0 or idx.max() >= NUM_ARCHS:
      p.error(f"--indices must lie in 0..{NUM_ARCHS - 1}")
    args.archs = len(idx)
  else:
    idx = np.sort(np.random.default_rng(args.seed).choice(NUM_ARCHS, args.archs, replace=False))
  rest = np.setdiff1d(np.arange(NUM_ARCHS), idx)
  warm = np.sort(np.random.default_rng(args.seed + 1).choice(rest, args.warmup, replace=False))
  size = SIZES[args.size]
  key = {"size": args.size, **size, "archs": args.archs, "batch": args.batch, "seed": args.seed,
         "jax_mode": args.jax_mode, "indices": idx.tolist(), "warmup": args.warmup}
  results = {"proxies": {}}
  if os.path.exists(out) and not args.fresh:
    with open(out) as f:
      results = json.load(f)
    if any(results.get("setup", {}).get(k) != v for k, v in key.items()):
      sys.exit(f"{out} holds the results of another setup (size, archs, batch or seed); pass "
               "--fresh to replace it or --out for another file")
  todo = [n for n in names if args.redo or n not in results["proxies"]]
  script = os.path.abspath(__file__)
  tmp = tempfile.mkdtemp(prefix="bench_vs_pytorch_")
  common = ["--size", args.size, "--batch", str(args.batch), "--seed", str(args.seed),
            "--jax-mode", args.jax_mode]
  env = dict(os.environ)
  env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
  t_start = time.perf_counter()
  jw = tw = None
  try:
    if todo:
      jw = Worker([args.jax_python, script, "--worker", "jax", "--tmp", tmp] + common, env)
      hello = jw.ask(cmd="archs", idx=idx.tolist())
      if "error" in hello:
        sys.exit("jaxnas worker failed:\n" + hello["error"])
      archs = hello["archs"]
      tw = Worker([args.torch_python, script, "--worker", "torch", "--batch-file",
                   hello["batch"], "--threads", str(args.threads)] + common)
      thello = tw.ask(cmd="hello")
      if "error" in thello:
        sys.exit("PyTorch worker failed:\n" + thello["error"])
      results["setup"] = {
          **key, "jax": hello["jax"], "jax_backend": hello["backend"], "torch": thello["torch"],
          "torch_threads": thello["threads"], "python": platform.python_version(),
          "machine": f"{os.cpu_count()} CPUs", "archs_ops": archs,
          "timing": "s/arch: median over the architectures after the first (wall); jaxnas: one "
                    "jaxnas.engine.score call per architecture, mode='auto', initialisation "
                    "included; PyTorch: model build with its default init + proxy (native "
                    "pass); the transfer pass (jaxnas' weights loaded) gives the agreement",
          "command": "python experiments/bench_vs_pytorch.py " + " ".join(sys.argv[1:])}
    for name in todo:
      load0 = os.getloadavg()
      print(f"{name}: jaxnas ...", end="", flush=True, file=sys.stderr)
      warm_s = None
      if len(warm):
        t_warm = time.perf_counter()
        jw.ask(cmd="run", proxy=name, idx=warm.tolist())
        warm_s = time.perf_counter() - t_warm
      jx = jw.ask(cmd="run", proxy=name, idx=idx.tolist())
      jx["warmup_s"] = warm_s
      if "error" in jx:
        results["proxies"][name] = {"error": jx["error"]}
        print(f" jaxnas failed:\n{jx['error']}", file=sys.stderr)
        _save(out, results)
        continue
      print(" PyTorch ...", end="", flush=True, file=sys.stderr)
      th = tw.ask(cmd="run", proxy=name, idx=idx.tolist(), archs=archs, weights=jx["weights"])
      if "error" in th:
        results["proxies"][name] = {"error": th["error"]}
        print(f" PyTorch failed:\n{th['error']}", file=sys.stderr)
        _save(out, results)
        continue
      row = summarise(name, jx, th, [load0, os.getloadavg()])
      results["proxies"][name] = row
      print(f" jaxnas {row['jaxnas']['s_per_arch']:.3g} s/arch, PyTorch "
            f"{row['pytorch']['s_per_arch']:.3g} s/arch, Spearman {row['spearman']:.4f}, max "
            f"rel. diff {_fmt(row['max_rel_diff'], '.1e')}", file=sys.stderr, flush=True)
      _save(out, results)
  finally:
    for w in (jw, tw):
      if w is not None:
        w.close()
    if args.keep_tmp:
      print(f"NPZ files kept in {tmp}", file=sys.stderr)
    else:
      shutil.rmtree(tmp, ignore_errors=True)
  res = size["resolution"]
  print(f"{args.size} size (C={size['C']}, N={size['N']}, {res}x{res}), {args.archs} architectures"
        f", batch {args.batch}; run took "
        f"{time.perf_counter() - t_start:.1f} s; results in {os.path.relpath(out, ROOT)}")
  print(table(results))


if __name__ == "__main__":
  main()
