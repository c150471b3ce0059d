"""How much of a proxy's score is the minibatch, not the architecture.

Scores the first ``--n`` architectures of an architecture file with ``--draws`` different
minibatches (``data.minibatch(seed=d)``, d = 0..draws-1; initialisation seed fixed at 0) and splits
the variance of the scores into the part between architectures and the part between minibatches
of one architecture:

    W = mean_a Var_d s(a, d)                        (within an architecture, across batches)
    A = max(Var_a mean_d s(a, d) - W / draws, 0)    (between architectures: the one-way ANOVA
                                                     estimate, the batch noise left in the means
                                                     taken out)
    noise share = W / (W + A)                       (1 - the intraclass correlation)

A noise share near 1 means the score mostly measures the batch. Also reported: the mean Spearman
between the rankings under two different batches (the ranking's stability when every architecture
shares one batch, as jaxnas does), and the Spearman between the shared-batch ranking (draw 0) and
a "fresh batch per architecture" ranking (architecture i scored under draw i mod draws, the
protocol of NASLib's NAS-Bench-Suite-Zero records): the agreement to expect with such a reference
even if both implementations were identical.

  python experiments/batch_noise.py --space nb101 --archs-file ../shared/data/nb101_naslib300.csv \
      --proxies epe_nas,jacob_cov,grad_norm,plain --n 24 --draws 4 --batch-size 32

Results: ``experiments/results/batch_noise_<space>.json`` (with the raw scores, ``(draws, n)`` per
proxy; architectures with a non-finite score under any batch are left out of the summary).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from scipy import stats

from jaxnas import data, engine, get_space
from jaxnas.commands import _io, score as score_cmd


def noise_summary(s: np.ndarray) -> dict:
  """Variance split and rank stability of scores ``s`` ``(draws, n)``."""
  within = float(np.mean(np.var(s, axis=0, ddof=1)))
  d, n = s.shape
  between = max(float(np.var(np.mean(s, axis=0), ddof=1)) - within / d, 0.0)
  pairs = [stats.spearmanr(s[i], s[j])[0] for i in range(d) for j in range(i + 1, d)]
  fresh = s[np.arange(n) % d, np.arange(n)]
  return {
      "noise_share": within / (within + between) if within + between > 0 else float("nan"),
      "std_between_archs": between ** 0.5, "std_within_arch": within ** 0.5,
      "spearman_between_batches_mean": float(np.mean(pairs)),
      "spearman_between_batches_min": float(np.min(pairs)),
      "spearman_shared_vs_fresh_batch": float(stats.spearmanr(s[0], fresh)[0]),
  }


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--space", default="nb101")
  p.add_argument("--archs-file", required=True)
  p.add_argument("--proxies", default="epe_nas,jacob_cov,grad_norm,plain")
  p.add_argument("--n", type=int, default=24)
  p.add_argument("--draws", type=int, default=4)
  p.add_argument("--batch-size", type=int, default=32)
  p.add_argument("--config", default=None)
  p.add_argument("--out", default=None)
  a = p.parse_args()
  space = get_space(a.space)
  archs = _io.select_archs(space, None, a.archs_file, None, 0)[:a.n]
  config = score_cmd.parse_config(a.config, space) if a.config else None
  out = a.out or f"experiments/results/batch_noise_{a.space}.json"
  res = {"space": a.space, "n": len(archs), "draws": a.draws, "batch_size": a.batch_size,
         "archs_file": os.path.basename(a.archs_file), "config": a.config, "proxies": {}}
  proxies = _io.split(a.proxies)
  scores = {p: [] for p in proxies}
  for d in range(a.draws):   # one call per batch: proxies sharing a gradient share its pass
    t = time.perf_counter()
    batch = data.minibatch(batch_size=a.batch_size, seed=d)
    got = engine.score(space, archs, proxies, batch, seed=0, config=config)
    print(f"batch {d}: {time.perf_counter() - t:.0f} s", flush=True)
    for p in proxies:
      scores[p].append(got[p].tolist())
  for p in proxies:
    s = np.asarray(scores[p])
    finite = np.all(np.isfinite(s), axis=0)
    r = noise_summary(s[:, finite])
    r["nonfinite_archs"] = int(np.sum(~finite))
    r["scores"] = scores[p]
    res["proxies"][p] = r
    print(p, json.dumps({k: round(v, 3) for k, v in r.items() if k != "scores"}), flush=True)
  with open(out, "w") as f:
    json.dump(res, f, indent=1)
  print("wrote", out)


if __name__ == "__main__":
  main()
