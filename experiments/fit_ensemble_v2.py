"""Ensemble v2: a weighted log-rank combination of proxies, fitted on CIFAR-100 only, reported held out.

    E(A) = sum_m w_m ln(rank_m(A) / N)        over a pool of N candidates (AZ-NAS' aggregation,
                                              with weights; ranks ascending, ties averaged,
                                              NaN and degenerate values at the bottom)

Pool-relative like ``aznas``: the combination is registered as a pooled score, so it needs no
transform or standardisation of heavy-tailed proxies (SynFlow spans 40 orders of magnitude) and is
invariant to any increasing transform of a member.

Data: per-architecture score files ``scores_<proxy>.csv`` of ``experiments/nb201_correlation.py``
from one or more directories (``--scores A,B``; a later directory wins for a proxy present in
both), restricted to the architectures every candidate scored. Fit: a seeded half of them,
target CIFAR-100 200-epoch test accuracy only; the weights maximise Spearman's rho over a grid on
the simplex (``--step``, default 0.1). CIFAR-10, ImageNet16-120 and the other half are never seen
by the fit. The halves exclude the 500-architecture subset, which is not a uniform sample
(``--with-subset`` lets it in). Reported: both halves against CIFAR-10 and CIFAR-100 test accuracy, each member alone
and ``aznas`` (if its components are candidates) on the same pools, and the 500-subset's
CIFAR-10 and ImageNet16-120 validation accuracy on whatever part of the subset the files cover
(pool: those subset architectures).

Held out after the fact (``--heldout``): the shipped assets, unchanged, on every uniform
architecture the members' files now hold outside the original fit half (read from ``--out``'s
``halves``), e.g. after the files grew with ``nb201_correlation.py --set outside:3000``; written
to ``ensemble_v2_heldout.json``.

  python experiments/fit_ensemble_v2.py --heldout
  python experiments/fit_ensemble_v2.py --scores experiments/results/correlation,experiments/results/correlation_sota \\
      --candidates az_expressivity,az_progressivity,az_trainability,az_complexity,nwot,synflow,meco \\
      --name ensemble_v2 [--asset jaxnas/_assets/ensemble_v2.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time

import numpy as np

from jaxnas import benchmarks
from jaxnas.benchmarks import nb201 as bench
from jaxnas.commands import _io
from jaxnas.proxies import ensemble as E1
from jaxnas.proxies import ensemble_v2 as E2
from jaxnas.proxies import get_proxy, with_pooled
from nb201_correlation import read_done

HERE = os.path.dirname(os.path.abspath(__file__))


def load(dirs, names):
  """``{proxy: {index: score}}`` from the first... last directory holding ``scores_<proxy>.csv``."""
  out = {}
  for name in names:
    for d in dirs:
      p = os.path.join(d, f"scores_{name}.csv")
      if os.path.exists(p):
        out[name] = read_done(p)
    if not out.get(name):
      raise SystemExit(f"no scores of {name!r} in {', '.join(dirs)}")
  return out


def simplex(k: int, step: float):
  """Every weight vector on the simplex with entries in multiples of ``step``."""
  n = int(round(1 / step))
  for c in itertools.combinations(range(n + k - 1), k - 1):
    parts = np.diff(np.concatenate([[-1], c, [n + k - 1]])) - 1
    yield parts / n


def fit(cols: dict, y, step: float):
  """The weights maximising Spearman(sum_m w_m logrank_m, y); ``cols`` oriented raw scores."""
  names = list(cols)
  lr = np.stack([E2.log_ranks(cols[m]) for m in names])
  best = (-np.inf, None)
  ry = np.argsort(np.argsort(y))
  for w in simplex(len(names), step):
    r = benchmarks.spearman(w @ lr, ry)
    if r > best[0]:
      best = (r, w)
  return best[0], dict(zip(names, (round(float(v), 4) for v in best[1])))


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--scores", default=os.path.join(HERE, "results", "correlation"))
  ap.add_argument("--candidates", default="", help="comma-separated proxy names (required "
                  "unless --heldout)")
  ap.add_argument("--heldout", action="store_true", help="evaluate the shipped ensemble_v2 "
                  "assets on the architectures outside the original fit half (no fitting)")
  ap.add_argument("--name", default="ensemble_v2", help="the pooled score's name in the asset")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--step", type=float, default=0.1)
  ap.add_argument("--with-subset", action="store_true",
                  help="let the 500-subset's architectures into the halves (not uniform)")
  ap.add_argument("--asset", default=None, help="write the fitted members here (JSON)")
  ap.add_argument("--out", default=os.path.join(HERE, "results", "ensemble_v2.json"))
  a = ap.parse_args(argv)
  if a.heldout:
    return heldout(a)
  if not a.candidates:
    raise SystemExit("--candidates is required (or --heldout)")
  names = _io.split(a.candidates)
  scores = load(_io.split(a.scores), names)
  scored = np.array(sorted(set.intersection(*(set(s) for s in scores.values()))))
  sub_all = bench.subset_indices()
  # the halves come from the uniform part: the 500-subset is not a uniform sample (the
  # correlation study's subset+N files hold it whole), so it is reported on its own
  common = scored if a.with_subset else np.setdiff1d(scored, sub_all)
  if len(common) < 40:
    raise SystemExit(f"only {len(common)} architectures scored by every candidate")
  perm = np.random.default_rng(a.seed).permutation(len(common))
  halves = {"fit": np.sort(common[perm[: len(common) // 2]]),
            "heldout": np.sort(common[perm[len(common) // 2:]])}
  sign = {m: 1.0 if get_proxy(m).higher_is_better else -1.0 for m in names}
  col = lambda m, idx: sign[m] * np.array([scores[m][i] for i in idx])
  t0 = time.perf_counter()
  rho_fit, weights = fit({m: col(m, halves["fit"]) for m in names},
                         benchmarks.accuracy(halves["fit"], "cifar100_test200"), a.step)
  spec = {"name": a.name, "members": [{"name": m, "weight": w} for m, w in weights.items() if w > 0],
          "fit": {"target": "cifar100_test200 (Spearman, simplex grid step "
                            f"{a.step})", "n": int(len(halves["fit"])), "seed": a.seed,
                  "candidates": names, "rho_fit": rho_fit}}

  def report(idx, truth):
    per = {m: col(m, idx) for m in names}
    acc = benchmarks.accuracy(idx, truth)
    row = {"n": int(len(idx)), a.name: benchmarks.spearman(E2.combine(per, spec), acc)}
    row.update({m: benchmarks.spearman(v, acc) for m, v in per.items()})
    v1 = E1.coefficients()["members"]
    if all(m["name"] in per for m in v1):   # the linear v1 ensemble, same architectures
      row["ensemble (v1)"] = benchmarks.spearman(
          E1.combine({m["name"]: sign[m["name"]] * per[m["name"]] for m in v1}), acc)
    pooled = with_pooled({m: (idx, sign[m] * v) for m, v in per.items()}, None)
    row.update({f"{p} (shipped)": benchmarks.spearman(v, acc) for p, (_, v) in pooled.items()
                if p not in per})
    return row

  figures = {f"{h}_{t}": report(idx, t) for h, idx in halves.items()
             for t in ("cifar10_test200", "cifar100_test200")}
  sub = np.intersect1d(scored, sub_all)
  if len(sub) >= 30:
    for t in ("cifar10_val200", "imagenet16_val200"):
      figures[f"subset_{t}"] = report(sub, t)
  spec["heldout"] = figures
  doc = {**spec, "fit_seconds": time.perf_counter() - t0, "halves": {k: v.tolist()
                                                                      for k, v in halves.items()}}
  with open(a.out, "w") as f:
    json.dump(doc, f, indent=1)
  if a.asset:
    with open(a.asset, "w") as f:
      json.dump(spec, f, indent=1)
  print("weights:", {m["name"]: m["weight"] for m in spec["members"]}, f"(fit rho {rho_fit:.4f})")
  for k, row in figures.items():
    print(f"{k:32s} n={row['n']:5d}  " + "  ".join(f"{m}={v:.3f}" for m, v in row.items()
                                                    if m != "n"))


def heldout(a) -> dict:
  """The shipped pooled ensembles (``ensemble_v2``, ``ensemble_v2_fwd``), their members and
  ``aznas`` (where its components cover the pool) on the uniform architectures outside the
  original fit half and the 500 subset, pooled over that set (and over the part AZ-NAS covers)."""
  with open(a.out) as f:
    fit_half = set(json.load(f)["halves"]["fit"])
  specs = {n: E2.coefficients(n) for n in ("ensemble_v2", "ensemble_v2_fwd")}
  members = sorted({m["name"] for sp in specs.values() for m in sp["members"]})
  az = ["az_expressivity", "az_progressivity", "az_trainability", "az_complexity"]
  dirs = _io.split(a.scores)
  scores = load(dirs, members)
  common = set.intersection(*(set(s) for s in scores.values()))
  idx = np.array(sorted(common - fit_half - set(bench.subset_indices().tolist())), np.int64)
  sign = {m: 1.0 if get_proxy(m).higher_is_better else -1.0 for m in members + az}
  col = lambda sc, m, ix: sign[m] * np.array([sc[m][i] for i in ix])

  def figures(ix, sc, names, extra):
    row = {"n": int(len(ix))}
    for t in ("cifar10_test200", "cifar100_test200"):
      acc = benchmarks.accuracy(ix, t)
      per = {m: col(sc, m, ix) for m in names}
      r = {n: benchmarks.spearman(E2.combine(per, sp), acc) for n, sp in specs.items()
           if all(m["name"] in per for m in sp["members"])}
      r.update({m: benchmarks.spearman(v, acc) for m, v in per.items()})
      for name in extra:
        r[name] = benchmarks.spearman(with_pooled({m: (ix, v) for m, v in per.items()},
                                                  [name])[name][1], acc)
      row[t] = r
    return row

  doc = {"pool": "uniform architectures scored by every member, outside the fit half and the 500 "
                 "subset (the shipped weights: no refit)", "all_members": figures(idx, scores,
                                                                                 members, [])}
  try:
    sa = {**scores, **load(dirs, az)}
    ia = np.array(sorted(set(idx.tolist()).intersection(*(set(sa[c]) for c in az))), np.int64)
    if len(ia) >= 40:
      doc["with_aznas"] = figures(ia, sa, members + az, ["aznas"])
  except SystemExit:
    pass
  out = os.path.join(os.path.dirname(a.out), "ensemble_v2_heldout.json")
  with open(out, "w") as f:
    json.dump(doc, f, indent=1)
  for k in ("all_members", "with_aznas"):
    if k in doc:
      for t in ("cifar10_test200", "cifar100_test200"):
        print(f"{k:12s} n={doc[k]['n']:5d} {t:17s} " + "  ".join(
            f"{m}={v:.3f}" for m, v in doc[k][t].items()))
  return doc


if __name__ == "__main__":
  main()
