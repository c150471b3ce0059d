"""GraSP's Hessian-vector product on the DARTS space: peak memory and time of each route.

``grasp`` needs ``H g`` (``jaxnas.proxies.grasp.hessian_gradient_product``). ``'forward'``
(``jax.linearize`` of the gradient) keeps every intermediate of the gradient pass for the tangent
pass; ``'jvp'`` recomputes the gradient with tangents instead; ``'reverse'`` is the reference's
double backpropagation. On the DARTS network at the reference's size (C=32, 8 cells, batch 64) the
first does not fit in this machine's 24 GiB. Each route runs in its own process (peak resident
memory is per process) on the first genotypes of the NB301 file; the scores must agree.

  python experiments/bench_grasp_memory.py [--n 2] [--config C=32,L=8] [--batch 64]
      [--mode eager] [--methods jvp,reverse,forward]
  python experiments/bench_grasp_memory.py --analysis --mode map --methods forward,jvp

``--analysis``: each route's compiled ``--mode`` program for one genotype, sized by XLA's memory
analysis (arguments + outputs + temporaries; what mode ``'auto'`` compares with the device's
memory, :mod:`jaxnas.engine.memory`), compiled but not run.

Results: ``experiments/results/bench_grasp_memory_<space>_<config>_b<batch>[_analysis][_<mode>].json``
(no mode suffix for the default ``eager`` runs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

CSV = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "shared", "data",
                   "nb301_naslib500.csv")


def run_method(a):
  from jaxnas import data, engine, get_space
  from jaxnas.commands import _io, score as score_cmd
  from jaxnas.proxies import grasp
  grasp.METHOD = a.method
  space = get_space(a.space)
  archs = (_io.select_archs(space, None, a.archs_file, None, 0)[:a.n] if a.space == "darts" else
           _io.select_archs(space, None, None, a.n, 0))
  config = score_cmd.parse_config(a.config or None, space)
  batch = data.minibatch(batch_size=a.batch, seed=0)
  if a.analysis:   # what mode 'auto' checks: XLA's size of the compiled program, not run
    import jax
    from jaxnas.engine import memory, scoring
    from jaxnas.proxies import get_proxy
    fn = scoring.make_score_fn(space, get_proxy("grasp"), config, a.mode)
    t = time.perf_counter()
    compiled = fn.lower(archs[:1], np.zeros(1, np.int32), batch, jax.random.key(0)).compile()
    print("RESULT " + json.dumps({"program_gib": memory.program_bytes(compiled) / 2**30,
                                  "compile_s": time.perf_counter() - t}), flush=True)
    return
  scores, secs = [], []
  for i in range(a.n):
    t = time.perf_counter()
    s = engine.score(space, archs[i][None], ["grasp"], batch, seed=0, config=config,
                     chunk_size=1, mode=a.mode)["grasp"][0]
    secs.append(time.perf_counter() - t)
    scores.append(float(s))
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20   # KiB -> GiB
  print("RESULT " + json.dumps({"scores": scores, "s": secs, "peak_gib": peak}), flush=True)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--space", default="darts", choices=("darts", "nb201"),
                 help="nb201: --n architectures drawn with seed 0 (--config '' for full size)")
  p.add_argument("--archs-file", default=CSV)
  p.add_argument("--n", type=int, default=2)
  p.add_argument("--config", default="C=32,L=8")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--mode", default="eager")
  p.add_argument("--methods", default="jvp,reverse,forward")
  p.add_argument("--analysis", action="store_true", help="compile each route's --mode program "
                 "(map or vmap) for one architecture and report XLA's memory analysis of it "
                 "(what mode 'auto' compares with the device's memory); nothing runs")
  p.add_argument("--method", help=argparse.SUPPRESS)
  a = p.parse_args()
  if a.method:
    return run_method(a)
  res = {"space": a.space, "config": a.config, "batch": a.batch, "n": a.n, "mode": a.mode,
         "analysis": a.analysis}
  for m in a.methods.split(","):
    r = subprocess.run([sys.executable, __file__, "--space", a.space, "--method", m, "--n", str(a.n), "--config",
                        a.config, "--batch", str(a.batch), "--mode", a.mode, "--archs-file",
                        a.archs_file] + (["--analysis"] if a.analysis else []),
                       capture_output=True, text=True)
    lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    res[m] = (json.loads(lines[-1][len("RESULT "):]) if lines and r.returncode == 0 else
              {"failed": r.returncode, "stderr": r.stderr.strip().splitlines()[-1:]})
    print(m, res[m], flush=True)
  ok = [m for m in a.methods.split(",") if "scores" in res[m]]
  if len(ok) > 1:
    ref = np.asarray(res[ok[0]]["scores"])
    res["max_rel_diff"] = max(float(np.max(np.abs(np.asarray(res[m]["scores"]) - ref)
                                           / np.abs(ref))) for m in ok[1:])
  res["load"] = os.getloadavg()
  out = os.path.join(os.path.dirname(__file__), "results", f"bench_grasp_memory_{a.space}_"
                     f"{(a.config or 'full').replace(',', '_').replace('=', '')}_b{a.batch}"
                     f"{'_analysis' if a.analysis else ''}"
                     f"{'' if a.mode == 'eager' and not a.analysis else '_' + a.mode}.json")
  with open(out, "w") as f:
    json.dump(res, f, indent=1)
  print(json.dumps({k: v for k, v in res.items() if k in ("max_rel_diff", "load")}))


if __name__ == "__main__":
  main()
