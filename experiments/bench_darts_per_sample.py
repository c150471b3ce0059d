"""HNAS' per-sample shares on the DARTS space: the depthwise convolution chosen by the batch.

The shares route (:mod:`jaxnas.ntk.per_sample`) runs the network one sample at a time under
``vmap``. Before :func:`jaxnas.spaces.ops.samples_vmapped`, the DARTS depthwise convolution's
``auto`` rule saw one sample's size, fell below its threshold and took the grouped lax convolution,
which with per-sample kernel copies XLA:CPU runs very slowly. This times ``hnas_trace`` (engine,
``map``) on the first genotypes of the NB301 file with the old choice (``vmapped_samples``
forced to 1) and the new one, each rule in its own process (a compiled program is cached per
proxy and configuration, so one process would reuse the first rule's program), and compares the
scores; then the new rule alone at the reference's size for the per-genotype cost.

  python experiments/bench_darts_per_sample.py [--n 3] [--config C=16,L=5] [--batch 16]
      [--full-n 2]

Results: ``experiments/results/bench_darts_per_sample.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time

import numpy as np

from jaxnas import data, engine, get_space
from jaxnas.commands import _io, score as score_cmd
from jaxnas.spaces import ops

OUT = "experiments/results/bench_darts_per_sample.json"
CSV = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "shared", "data",
                   "nb301_naslib500.csv")


@contextlib.contextmanager
def old_rule():
  """The choice as before: every depthwise convolution sees one sample's size."""
  saved = ops.vmapped_samples
  ops.vmapped_samples = lambda: 1
  try:
    yield
  finally:
    ops.vmapped_samples = saved


def timed(space, arch, batch, config):
  t = time.perf_counter()
  s = engine.score(space, arch[None], ["hnas_trace"], batch, seed=0, config=config, chunk_size=1,
                   mode="map")["hnas_trace"][0]
  return float(s), time.perf_counter() - t


def run_rule(rule, a):
  space = get_space("darts")
  archs = _io.select_archs(space, None, a.archs_file, None, 0)
  config = score_cmd.parse_config(a.config, space)
  batch = data.minibatch(batch_size=a.batch, seed=0)
  ctx = old_rule() if rule == "old" else contextlib.nullcontext()
  out = {}
  with ctx:
    out["small"] = [timed(space, archs[i], batch, config) for i in range(a.n)]
    print(rule, out["small"], flush=True)
    if rule == "new" and a.full_n:
      full = score_cmd.parse_config("C=32,L=8", space)
      b64 = data.minibatch(batch_size=64, seed=0)
      out["full"] = [timed(space, archs[i], b64, full) for i in range(a.full_n)]
      print(rule, "full size", out["full"], flush=True)
  print("RESULT " + json.dumps(out), flush=True)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--archs-file", default=CSV)
  p.add_argument("--n", type=int, default=3)
  p.add_argument("--config", default="C=16,L=5")
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--full-n", type=int, default=2, help="genotypes at C=32,L=8, batch 64")
  p.add_argument("--rule", choices=("old", "new"), help=argparse.SUPPRESS)
  a = p.parse_args()
  if a.rule:
    return run_rule(a.rule, a)
  res = {"config": a.config, "batch": a.batch, "n": a.n}
  for rule in ("old", "new"):
    r = subprocess.run([sys.executable, __file__, "--rule", rule, "--n", str(a.n), "--config",
                        a.config, "--batch", str(a.batch), "--full-n", str(a.full_n),
                        "--archs-file", a.archs_file], capture_output=True, text=True, check=True)
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")][-1]
    res[rule] = json.loads(line[len("RESULT "):])
    print(rule, res[rule], flush=True)
  old, new = (np.asarray(res[k]["small"]) for k in ("old", "new"))
  res["steady_s_old_new"] = [float(np.median(old[1:, 1])), float(np.median(new[1:, 1]))]
  res["steady_ratio_old_over_new"] = res["steady_s_old_new"][0] / res["steady_s_old_new"][1]
  res["max_rel_diff"] = float(np.max(np.abs(old[:, 0] - new[:, 0]) / np.abs(old[:, 0])))
  res["load"] = os.getloadavg()
  with open(OUT, "w") as f:
    json.dump(res, f, indent=1)
  print(json.dumps({k: v for k, v in res.items() if k not in ("old", "new")}))


if __name__ == "__main__":
  main()
