"""Old stack vs new: re-score stored NB201 architectures on the installed JAX and compare.

The correlation study's score files (``experiments/results/correlation/scores_<proxy>.csv``) were
written on jax 0.4.23. This script re-scores a seeded sample of each file's architectures with the
same proxy, seed and batch at full size (C=16, N=5, 32x32) on the installed stack and reports, per
proxy, the Spearman rank agreement of old and new scores, the largest and the median relative
difference ``|new - old| / max(|old|, tiny)``, and how many scores were not finite.

The sample is a seeded permutation of each stored file's architectures (``--seed``), so a smaller
``--n`` is a prefix of a larger one; new scores go to ``OUT/scores_<proxy>.csv`` incrementally and
a rerun resumes. The summary goes to ``OUT/agreement.json`` and ``OUT/agreement.md``.

  python experiments/stack_agreement.py --n 200                       # every stored proxy
  python experiments/stack_agreement.py --proxies grasp,zico --n 20   # the slow ones, fewer
  python experiments/stack_agreement.py --table-only
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nb201_correlation as corr  # noqa: E402

import jax  # noqa: E402

from jaxnas import benchmarks, data  # noqa: E402
from jaxnas.commands import _io  # noqa: E402
from jaxnas.commands.score import downsample  # noqa: E402
from jaxnas.proxies import get_proxy  # noqa: E402

STORED = "experiments/results/correlation"


def stored_proxies(stored: str) -> list[str]:
  return sorted(fn[len("scores_"):-4] for fn in os.listdir(stored)
                if fn.startswith("scores_") and fn.endswith(".csv"))


def sample(stored: str, proxy: str, n: int, seed: int) -> np.ndarray:
  """The first ``n`` of a seeded permutation of the stored file's architectures."""
  old = corr.read_done(os.path.join(stored, f"scores_{proxy}.csv"))
  idx = np.array(sorted(old), np.int64)
  return np.random.default_rng(seed).permutation(idx)[:n]


def compare(stored: str, out: str, proxy: str) -> dict | None:
  old = corr.read_done(os.path.join(stored, f"scores_{proxy}.csv"))
  new = corr.read_done(os.path.join(out, f"scores_{proxy}.csv"))
  common = np.array(sorted(set(old) & set(new)), np.int64)
  if len(common) == 0:
    return None
  a = np.array([old[i] for i in common])
  b = np.array([new[i] for i in common])
  fin = np.isfinite(a) & np.isfinite(b)
  rel = np.abs(b - a)[fin] / np.maximum(np.abs(a[fin]), 1e-30)
  worst = int(common[fin][np.argmax(rel)]) if rel.size else None
  return {"proxy": proxy, "n": int(len(common)), "n_nonfinite_new": int(np.sum(~np.isfinite(b))),
          "spearman_old_new": benchmarks.spearman(a[fin], b[fin]) if fin.sum() > 2 else None,
          "max_rel_diff": float(np.max(rel)) if rel.size else None,
          "median_rel_diff": float(np.median(rel)) if rel.size else None,
          "worst_index": worst,
          "n_exactly_equal": int(np.sum(a == b))}


def table(stored: str, out: str) -> list[dict]:
  rows = [r for p in stored_proxies(stored) if (r := compare(stored, out, p)) is not None]
  meta = {"jax": jax.__version__, "stored": stored, "rows": rows}
  with open(os.path.join(out, "agreement.json"), "w") as f:
    json.dump(meta, f, indent=1)
  fmt = lambda v, f: "" if v is None else format(v, f)
  md = [f"Re-scored on jax {jax.__version__} vs the stored jax 0.4.23 scores (same archs, seed, "
        "batch; full size).", "",
        "| proxy | archs | Spearman old vs new | max rel. diff | median rel. diff | "
        "bit-identical | non-finite (new) |", "|---|---|---|---|---|---|---|"]
  for r in rows:
    md.append(f"| {r['proxy']} | {r['n']} | {fmt(r['spearman_old_new'], '.6f')} | "
              f"{fmt(r['max_rel_diff'], '.2e')} | {fmt(r['median_rel_diff'], '.2e')} | "
              f"{r['n_exactly_equal']} | {r['n_nonfinite_new']} |")
  with open(os.path.join(out, "agreement.md"), "w") as f:
    f.write("\n".join(md) + "\n")
  print("\n".join(md))
  return rows


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--proxies", default="", help="comma-separated (default: every stored proxy)")
  p.add_argument("--n", type=int, default=200, help="architectures per proxy (default 200)")
  p.add_argument("--seed", type=int, default=0, help="sample and scoring seed (the study's: 0)")
  p.add_argument("--stored", default=STORED)
  p.add_argument("--out", default="experiments/results/stack_agreement")
  p.add_argument("--chunk", type=int, default=8)
  p.add_argument("--table-only", action="store_true")
  a = p.parse_args(argv)
  if a.n < 1:
    raise SystemExit(f"--n must be a positive integer, got {a.n}")
  os.makedirs(a.out, exist_ok=True)
  have = stored_proxies(a.stored)
  names = _io.split(a.proxies) if a.proxies else have
  missing = [n for n in names if n not in have]
  if missing:
    raise SystemExit(f"no stored scores for {missing}; stored: {', '.join(have)}")
  if not a.table_only:
    for name in names:
      idx = sample(a.stored, name, a.n, a.seed)
      bs = get_proxy(name).batch_size or 64
      batch = downsample(data.minibatch("cifar10-bundled", bs, seed=a.seed), 32)
      print(f"{name}: {len(idx)} architectures, batch {bs}", flush=True)
      corr.score_proxy(name, idx, a.out, batch, a.seed, a.chunk)
  table(a.stored, a.out)


if __name__ == "__main__":
  main()
