"""Throughput of the scoring engine per proxy at the default NB201 size (C=16, N=5, 32x32).

For each proxy a fresh worker process measures (the parent collects, prints and writes
``experiments/results/bench_throughput_<backend>.json``):

* ``first_score_s``: time to first score from a cold process (process start, imports, data,
  tracing, compilation, one architecture), as a user of ``jaxnas score --archs N`` sees it;
* ``steady_s_per_arch``: median wall seconds per architecture of repeated compiled calls on
  different architectures (chunks of 64 for cheap proxies, 2 for network-heavy ones) (``steady_cpu_s_per_arch``: process CPU seconds, all threads; on a
  machine shared with other work this is the steadier measure of cost);
* ``run_arch_per_s``: architectures per second of a run through :func:`engine.score_to_file`
  (chunks committed to disk, progress, everything): over the whole space (15,625) with
  ``--whole-space`` for that proxy, else over a seeded sample (``--run-archs`` /
  ``--run-archs-heavy``), an extrapolation for the whole space;
* ``peak_rss_mb``: the worker's peak resident memory;
* ``gflops``: achieved useful GFLOP/s = (approximate passes x forward MACs x 2 x images) / time,
  against the machine's measured float32 (and float64) matmul rate.

  python experiments/bench_throughput.py [--proxies params,flops,nwot,...] [--whole-space params,flops]
      [--run-archs 64] [--repeats 3] [--mode auto] [--chunk-size 64]
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

T_START = time.time()
SHARED_PROXIES = ("params", "flops", "l2_norm", "synflow", "nwot", "grad_norm", "snip", "fisher",
                  "jacob_cov", "plain", "grasp")
#: zero-cost-nas reference (PyTorch CPU, this 2-core machine, batch 64, median s/arch incl. build)
REFERENCE_S = {"synflow": 0.29, "grad_norm": 0.54, "snip": 0.54, "jacob_cov": 0.54, "plain": 0.56,
               "fisher": 0.64, "grasp": 1.39, "l2_norm": 0.06}
#: approximate forward-pass equivalents of network arithmetic per architecture (0: none)
PASSES = {"params": 0, "flops": 0, "l2_norm": 0, "nwot": 1, "jacob_cov": 2, "grad_norm": 3,
          "snip": 3, "fisher": 3, "plain": 3, "synflow": 3, "grasp": 9}
#: proxies cheap enough per architecture that a chunk of many is the steady-state unit
CHEAP = ("params", "flops", "l2_norm", "synflow")


def matmul_rate(n=1024, dtype="float32", repeats=7):
  import jax
  import jax.numpy as jnp
  ctx = None
  if dtype == "float64":
    from jaxnas._compat import enable_x64
    ctx = enable_x64()
    ctx.__enter__()
  try:
    a = jax.random.normal(jax.random.key(0), (n, n), dtype=jnp.dtype(dtype))
    f = jax.jit(lambda a, b: a @ b)
    f(a, a).block_until_ready()
    ts = []
    for _ in range(repeats):
      t = time.perf_counter()
      f(a, a).block_until_ready()
      ts.append(time.perf_counter() - t)
    return 2 * n**3 / float(np.median(ts)) / 1e9
  finally:
    if ctx is not None:
      ctx.__exit__(None, None, None)


def _cpu():
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def worker(a):
  """Runs in a fresh process: cold first score, steady state, a committed run; prints JSON."""
  import jax
  from jaxnas import data, engine
  from jaxnas.engine import scoring
  from jaxnas.proxies import get_proxy
  from jaxnas.spaces import get_space, nb201
  t_imported = time.time()
  space, proxy = get_space("nb201"), get_proxy(a.worker)
  batch = data.minibatch("cifar10-bundled", a.batch_size, seed=0)
  rng = np.random.default_rng(0)
  idx = rng.permutation(nb201.NUM_ARCHS)
  res = {"proxy": a.worker, "import_s": t_imported - a.spawned}
  kw = dict(mode=a.mode, group=a.group)
  # cold: the first score, one architecture
  first = engine.score(space, nb201.from_index(idx[:1]), [a.worker], batch, **kw)[a.worker]
  res["first_score_s"] = time.time() - a.spawned
  res["first_value"] = float(first[0])
  # steady state: compiled calls on fresh architectures
  k = a.steady_archs or (64 if a.worker in CHEAP else 2)
  b = scoring.default_batch_for(proxy, batch)
  key = jax.random.key(0)
  fn = scoring.make_score_fn(space, proxy, None, a.mode, group=a.group)
  k = scoring.call_size(10**9, k, fn.multiple)
  walls, cpus, macs = [], [], []
  with scoring.x64_context(proxy):
    t0 = time.perf_counter()
    for r in range(a.repeats + 1):
      sel = idx[1 + r * k:1 + (r + 1) * k]
      archs = nb201.from_index(sel)
      c0, w0 = _cpu(), time.perf_counter()
      jax.block_until_ready(fn(archs, sel.astype(np.int32), b, key))
      w, c = time.perf_counter() - w0, _cpu() - c0
      if r == 0:
        res["first_chunk_s"] = time.perf_counter() - t0   # includes compilation when k > 1
        continue
      walls.append(w / k)
      cpus.append(c / k)
      macs.append(float(nb201.count_flops(archs, convention="macs").mean()))
  res.update(steady_archs=k, steady_s_per_arch=float(np.median(walls)),
             steady_cpu_s_per_arch=float(np.median(cpus)), mode=fn.info["mode"],
             branches=fn.info["branches"])
  images = int(b.x.shape[0])
  res["useful_gflop_per_arch"] = PASSES.get(a.worker, 0) * 2 * float(np.mean(macs)) * images / 1e9
  # a committed run (whole space or sample)
  # (heavy proxies: a small sample in chunks of the steady-state size, which reuses its
  # compilation; under lax.map the chunk size does not change the per-architecture work)
  heavy = not (a.whole_space or a.worker in CHEAP)
  n = nb201.NUM_ARCHS if a.whole_space else (a.run_archs_heavy if heavy else a.run_archs)
  chunk = k if heavy else a.chunk_size
  sel = np.sort(idx[:n]) if n < nb201.NUM_ARCHS else np.arange(n)
  with tempfile.TemporaryDirectory() as d:
    t0, c0 = time.perf_counter(), _cpu()
    meta = engine.score_to_file(space, nb201.from_index(sel), [a.worker], batch,
                                os.path.join(d, "s.csv"), chunk_size=chunk, **kw)
    dt, dc = time.perf_counter() - t0, _cpu() - c0
  res.update(run_archs=int(n), run_chunk=int(chunk), run_s=dt, run_cpu_s=dc, run_arch_per_s=n / dt,
             run_whole_space=bool(n == nb201.NUM_ARCHS), run_mode=meta["run"]["modes"][a.worker])
  res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  res["device"] = str(jax.devices()[0])
  print("RESULT " + json.dumps(res), flush=True)


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--proxies", default=",".join(SHARED_PROXIES))
  p.add_argument("--whole-space", default="params,flops",
                 help="proxies whose committed run covers all 15,625 architectures")
  p.add_argument("--run-archs", type=int, default=64,
                 help="sample size of the runs of cheap proxies (not whole-space)")
  p.add_argument("--run-archs-heavy", type=int, default=4,
                 help="sample size of the runs of network-heavy proxies")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--steady-archs", type=int, default=None,
                 help="architectures per steady-state call (default 64 for cheap proxies, else 1)")
  p.add_argument("--mode", default="auto",
                 help="scoring mode; several (e.g. map,vmap,hybrid) compare them per proxy")
  p.add_argument("--skip-run", action="store_true", help="no committed run (mode comparisons)")
  p.add_argument("--group", type=int, default=None)
  p.add_argument("--chunk-size", type=int, default=64)
  p.add_argument("--batch-size", type=int, default=64)
  p.add_argument("--out", default=None)
  p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  p.add_argument("--spawned", type=float, default=None, help=argparse.SUPPRESS)
  a = p.parse_args()
  if a.worker:
    a.whole_space = a.worker in a.whole_space.split(",")
    return worker(a)

  # the parent only measures the matmul rate: it must not hold the accelerator's memory
  worker_env = dict(os.environ)
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  import jax
  from jaxnas.proxies import list_proxies
  backend = jax.default_backend()
  out = a.out or f"experiments/results/bench_throughput_{backend}.json"
  known = set(list_proxies())
  wanted = [x for x in a.proxies.split(",") if x]
  missing = [x for x in wanted if x not in known]
  load0 = os.getloadavg()
  report = {"device": str(jax.devices()[0]), "backend": backend, "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(), "jax": jax.__version__,
            "matmul_gflops_f32": matmul_rate(), "matmul_gflops_f64": matmul_rate(dtype="float64"),
            "missing_proxies": missing, "settings": {k: v for k, v in vars(a).items()
                                                     if k not in ("worker", "spawned")},
            "proxies": {}}
  print(f"matmul f32 {report['matmul_gflops_f32']:.1f} GFLOP/s, "
        f"f64 {report['matmul_gflops_f64']:.1f} GFLOP/s; load average {load0}", flush=True)
  modes = a.mode.split(",")
  for name, mode in [(n, m) for n in wanted for m in modes]:
    if name in missing:
      print(f"{name}: not registered (missing)", flush=True)
      continue
    spawned = time.time()
    cmd = [sys.executable, __file__, "--worker", name, "--spawned", repr(spawned),
           "--whole-space", a.whole_space, "--run-archs", str(a.run_archs),
           "--run-archs-heavy", str(a.run_archs_heavy),
           "--repeats", str(a.repeats), "--mode", mode, "--chunk-size", str(a.chunk_size),
           "--batch-size", str(a.batch_size)]
    if a.skip_run:
      cmd += ["--skip-run"]
    if a.steady_archs:
      cmd += ["--steady-archs", str(a.steady_archs)]
    if a.group:
      cmd += ["--group", str(a.group)]
    load = os.getloadavg()[0]
    r = subprocess.run(cmd, capture_output=True, text=True, env=worker_env)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode or not lines:
      print(f"{name}: worker failed\n{r.stderr[-2000:]}", flush=True)
      report["proxies"][f"{name}@{mode}"] = {"error": r.stderr[-2000:]}
      continue
    res = json.loads(lines[-1][7:])
    res["load_average_at_start"] = load
    g = res["useful_gflop_per_arch"]
    res["gflops_steady"] = g / res["steady_s_per_arch"] if g else 0.0
    res["gflops_steady_cpu_time"] = g / res["steady_cpu_s_per_arch"] if g else 0.0
    ref = REFERENCE_S.get(name)
    res["reference_s_per_arch"] = ref
    report["proxies"][name if len(modes) == 1 else f"{name}@{mode}"] = res
    print(f"{name:<10} mode {res['mode']:<5} first score {res['first_score_s']:6.1f} s | steady "
          f"{res['steady_s_per_arch']:.4g} s/arch wall, {res['steady_cpu_s_per_arch']:.4g} CPU-s"
          + (f" | run {res['run_arch_per_s']:.4g} arch/s over {res['run_archs']}"
             if "run_arch_per_s" in res else "") +
          f" | peak {res['peak_rss_mb']:.0f} MB | {res['gflops_steady']:.1f} GFLOP/s"
          + (f" | reference {ref} s" if ref else "") + f" | load {load:.1f}", flush=True)
    _write(out, report)   # after every proxy: a long benchmark killed midway keeps its figures
  report["load_average_end"] = os.getloadavg()
  _write(out, report)
  print(f"-> {out}")


def _write(path, report):
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(report, f, indent=1)
  os.replace(path + ".tmp", path)


if __name__ == "__main__":
  main()
