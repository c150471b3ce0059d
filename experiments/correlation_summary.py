"""One table of every proxy's rank correlations, from the score files of ``nb201_correlation.py``.

Reads ``experiments/results/correlation/`` (full size: C=16, N=5, 32x32) and
``experiments/results/correlation_small/`` (reduced size: N=1, 16x16) and reports, per proxy,
Spearman rho (Kendall tau where noted) against the bundled 200-epoch accuracies on four sets of
architectures, so that each figure sits beside the reference it is compared with:

* ``same100``: the 100 subset architectures of ``--set subset:100`` (seed 0) that every proxy was
  scored on at full size (vs CIFAR-10 validation, CIFAR-10 test, CIFAR-100 test);
* ``subset500``: the 500-architecture NAS-Bench-Suite-Zero subset, vs ``cifar10_val200`` (NASLib's
  protocol and figures), where the proxy scored all of it;
* ``uniform``: the architectures drawn uniformly (``subset+N`` sets, or the whole space), vs
  CIFAR-10 test accuracy: the whole-space estimate compared with the published whole-space figures;
* ``outside3000``: the architectures of ``--set outside:3000`` (a uniform sample of the 15,125
  outside the subset, growing the ``subset+1000`` files' uniform part), vs CIFAR-10 and CIFAR-100
  test accuracy, for proxies scored on at least 1,500 of them (not the whole space);
* ``reduced100``: the same 100 architectures at reduced size.

Writes ``experiments/results/correlation_summary.{json,md}``.

  python experiments/correlation_summary.py
"""

import argparse
import json
import os

import numpy as np

from jaxnas import benchmarks
from jaxnas.benchmarks import nb201 as bench
from jaxnas.proxies import get_proxy
from nb201_correlation import (PUBLISHED_SUBSET, PUBLISHED_WHOLE, UNDEFINED_SCORE, arch_set,
                               read_done as read)

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def same100(seed=0):
  """The ``subset:100`` architectures of ``nb201_correlation.py``."""
  return arch_set("subset:100", seed)[0]


def uniform_set(seed=0, n=1000):
  """The uniformly drawn part of ``nb201_correlation.py``'s ``subset+N`` set (``uniform:N``)."""
  return arch_set(f"uniform:{n}", seed)[0]


def rho(scores, idx, truth, drop=None, kendall=False):
  """(rank correlation, n) of the oriented scores of the scored architectures among ``idx``."""
  idx = np.array([i for i in idx if i in scores], np.int64)
  if drop is not None:
    idx = np.array([i for i in idx if scores[i] != drop], np.int64)
  if len(idx) < 10:
    return None, int(len(idx))
  s = np.array([scores[i] for i in idx])
  acc = benchmarks.accuracy(idx, truth)
  f = benchmarks.kendall if kendall else benchmarks.spearman
  return float(f(s, acc)), int(len(idx))


def summarise(full_dir, small_dir, seed=0):
  rows = []
  s100, sub500, uni = same100(seed), np.sort(bench.subset_indices()), uniform_set(seed)
  names = sorted({fn[7:-4] for d in (full_dir, small_dir) if os.path.isdir(d)
                  for fn in os.listdir(d) if fn.startswith("scores_") and fn.endswith(".csv")})
  for name in names:
    orient = 1.0 if get_proxy(name).higher_is_better else -1.0
    full = {i: orient * v for i, v in read(os.path.join(full_dir, f"scores_{name}.csv")).items()}
    small = {i: orient * v for i, v in read(os.path.join(small_dir, f"scores_{name}.csv")).items()}
    variants = [(name, None)]
    if name in UNDEFINED_SCORE:
      variants.append((f"{name} (defined only)", orient * UNDEFINED_SCORE[name]))
    for label, drop in variants:
      r = {"proxy": label, "source": name}
      for key, scores, idx, truth in (
          ("same100_c10_val", full, s100, "cifar10_val200"),
          ("same100_c10_test", full, s100, "cifar10_test200"),
          ("same100_c100_test", full, s100, "cifar100_test200"),
          ("subset500_c10_val", full, sub500, "cifar10_val200"),
          ("reduced100_c10_val", small, s100, "cifar10_val200"),
          ("reduced100_c10_test", small, s100, "cifar10_test200")):
        r[key], r[key + "_n"] = rho(scores, idx, truth, drop)
      whole = len(full) == 15625
      uidx = np.arange(15625) if whole else uni
      r["uniform_c10_test"], r["uniform_n"] = rho(full, uidx, "cifar10_test200", drop)
      r["uniform_c10_test_kendall"], _ = rho(full, uidx, "cifar10_test200", drop, kendall=True)
      r["uniform_c100_test"], _ = rho(full, uidx, "cifar100_test200", drop)
      r["uniform_is_whole_space"] = whole
      out3k = arch_set("outside:3000", seed)[0]
      r["outside3000_c10_test"], r["outside3000_n"] = rho(full, out3k, "cifar10_test200", drop)
      r["outside3000_c100_test"], _ = rho(full, out3k, "cifar100_test200", drop)
      r["n_nonfinite_full"] = int(sum(not np.isfinite(v) for v in full.values()))
      r["n_scored_full"] = len(full)
      r["published_whole_space"] = PUBLISHED_WHOLE.get(name)
      r["published_naslib_subset"] = PUBLISHED_SUBSET.get(name)
      rows.append(r)
  return rows


def markdown(rows):
  def f(v, n=None, full=None):
    if v is None:
      return ""
    return f"{v:.3f}" + (f" ({n})" if n is not None and full is not None and n != full else "")
  head = ("| proxy | same 100, full size: rho C10 val | rho C10 test | rho C100 test | 500 subset: "
          "rho C10 val | NASLib subset | uniform sample (n) or whole space: rho C10 test | tau | "
          "published whole space | 3,000 uniform outside the subset (n): rho C10 / C100 test | "
          "reduced size, same 100: rho C10 val |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")
  lines = [head]
  for r in rows:
    n_uni = r["uniform_n"]
    uni = "" if r["uniform_c10_test"] is None or n_uni < 300 else (
        f"{r['uniform_c10_test']:.3f} ({'whole space' if r['uniform_is_whole_space'] else n_uni})")
    o3k = "" if (r["outside3000_c10_test"] is None or r["outside3000_n"] < 1500
                 or r["uniform_is_whole_space"]) else (
        f"{r['outside3000_c10_test']:.3f} / {r['outside3000_c100_test']:.3f} "
        f"({r['outside3000_n']})")
    lines.append(
        f"| {r['proxy']} | {f(r['same100_c10_val'], r['same100_c10_val_n'], 100)} | "
        f"{f(r['same100_c10_test'], r['same100_c10_test_n'], 100)} | "
        f"{f(r['same100_c100_test'], r['same100_c100_test_n'], 100)} | "
        f"{f(r['subset500_c10_val'], r['subset500_c10_val_n'], 500) if r['subset500_c10_val_n'] > 100 else ''} | "
        f"{f(r['published_naslib_subset'])} | {uni} | "
        f"{f(r['uniform_c10_test_kendall']) if uni else ''} | "
        f"{f(r['published_whole_space'])} | {o3k} | "
        f"{f(r['reduced100_c10_val'], r['reduced100_c10_val_n'], 100)} |")
  return "\n".join(lines) + "\n"


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--full", default=os.path.join(RESULTS, "correlation"))
  ap.add_argument("--small", default=os.path.join(RESULTS, "correlation_small"))
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", default=os.path.join(RESULTS, "correlation_summary"))
  a = ap.parse_args()
  rows = summarise(a.full, a.small, a.seed)
  with open(a.out + ".json", "w") as fh:
    json.dump(rows, fh, indent=1)
  md = markdown(rows)
  with open(a.out + ".md", "w") as fh:
    fh.write(md)
  print(md)


if __name__ == "__main__":
  main()
