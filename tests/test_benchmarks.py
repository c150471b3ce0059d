"""Bundled NB201 ground truth and rank metrics, against the shared tables and direct formulas."""

import csv
import math

import numpy as np
import pytest
import scipy.stats

from jaxnas import benchmarks
from jaxnas.benchmarks import nb201 as bench
from jaxnas.errors import JaxnasInputError
from tests.conftest import shared_file


def _read(name):
  with open(shared_file(name)) as f:
    return list(csv.DictReader(f))


def test_bundled_table_equals_shared_csvs():
  t = bench.table()
  rows = _read("nb201_test200.csv")
  for r in rows[::7]:
    i = int(r["index"])
    assert t["cifar10_test200"][i] == pytest.approx(float(r["cifar10_test200"]), abs=1e-9)
    assert t["cifar100_test200"][i] == pytest.approx(float(r["cifar100_test200"]), abs=1e-9)
  r12 = _read("nb201_12epoch.csv")
  for r in r12[::11]:
    i = int(r["index"])
    assert t["cifar10valid_val12"][i] == pytest.approx(float(r["cifar10valid_val12"]), abs=1e-9)
  sub = _read("nb201_val200_subset.csv")
  assert sorted(int(r["index"]) for r in sub) == sorted(bench.subset_indices().tolist())
  for r in sub:
    assert t["cifar10_val200"][int(r["index"])] == pytest.approx(float(r["cifar10_val200"]))
  # the subset metric is undefined elsewhere
  outside = np.setdiff1d(np.arange(15625), bench.subset_indices())
  assert np.all(np.isnan(t["cifar10_val200"][outside]))


def test_known_values_and_lookup_forms():
  assert benchmarks.accuracy(6111) == pytest.approx(94.3733, abs=1e-4)
  assert np.nanmax(bench.table()["cifar10_test200"]) == benchmarks.accuracy(6111)
  assert benchmarks.accuracy(9930, "cifar100_test200") == pytest.approx(73.5133, abs=1e-4)
  s = "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|"
  assert benchmarks.lookup(s, "cifar10_val200") == pytest.approx(89.91)
  assert benchmarks.lookup(180) == benchmarks.accuracy(180)
  assert int(np.sum(bench.table()["cifar10_test200"] == 10.0)) == 341
  with pytest.raises(JaxnasInputError, match="unknown benchmark metric 'acc'"):
    benchmarks.accuracy(0, "acc")
  with pytest.raises(JaxnasInputError, match="out of range"):
    benchmarks.accuracy([0, 20000])


def test_rank_metrics_against_direct_formulas():
  rng = np.random.default_rng(0)
  a = rng.normal(size=200)
  b = a + rng.normal(size=200)
  # Spearman = Pearson of ranks (no ties)
  ra, rb = scipy.stats.rankdata(a), scipy.stats.rankdata(b)
  assert benchmarks.spearman(a, b) == pytest.approx(np.corrcoef(ra, rb)[0, 1], abs=1e-12)
  # Kendall tau by counting pairs
  conc = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i in range(60) for j in range(i))
  assert benchmarks.kendall(a[:60], b[:60]) == pytest.approx(conc / (60 * 59 / 2), abs=1e-12)
  assert benchmarks.spearman(a, a) == pytest.approx(1.0)
  assert benchmarks.spearman(a, -a) == pytest.approx(-1.0)


def test_non_finite_scores_are_dropped_and_counted():
  a = np.arange(10.0)
  s = a.copy()
  s[[2, 5]] = [np.nan, np.inf]
  rep = benchmarks.rank_report(s, a)
  assert rep["n"] == 8 and rep["n_nonfinite_scores"] == 2
  assert rep["spearman"] == pytest.approx(1.0)
  assert math.isnan(benchmarks.spearman([1.0, np.nan], [1.0, 2.0]))


def test_top_k_metrics():
  t = np.arange(100.0)
  assert benchmarks.top_k_overlap(t, t, 0.1) == 1.0
  assert benchmarks.top_k_overlap(-t, t, 0.1) == 0.0
  assert benchmarks.top_k_precision(t, t, k=5, truth_fraction=0.05) == 1.0
  assert benchmarks.top_k_precision(-t, t, k=5, truth_fraction=0.05) == 0.0
