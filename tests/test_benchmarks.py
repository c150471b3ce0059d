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


def test_spearman_interval_matches_a_loop_over_resamples_and_covers_the_truth():
  rng = np.random.default_rng(3)
  a = rng.normal(size=60)
  t = a + rng.normal(size=60)
  r = a + 2 * rng.normal(size=60)
  got = benchmarks.spearman_interval(a, t, r, n_boot=300, seed=7)
  # independent route: the same draws, one scipy Spearman at a time
  idx = np.random.default_rng(7).integers(0, 60, size=(300, 60))
  rho = np.array([scipy.stats.spearmanr(a[i], t[i]).statistic for i in idx])
  ref = np.array([scipy.stats.spearmanr(r[i], t[i]).statistic for i in idx])
  assert [got["lo"], got["hi"]] == pytest.approx(list(np.quantile(rho, [0.025, 0.975])), abs=1e-12)
  assert [got["diff_lo"], got["diff_hi"]] == pytest.approx(
      list(np.quantile(rho - ref, [0.025, 0.975])), abs=1e-12)
  assert got["lo"] < benchmarks.spearman(a, t) < got["hi"]
  # many architectures are resampled in chunks of rows, drawn in order from the same generator
  from jaxnas.benchmarks import metrics
  old, metrics.CHUNK_VALUES = metrics.CHUNK_VALUES, 64 * 60
  try:
    chunked = benchmarks.spearman_interval(a, t, n_boot=300, seed=7)
  finally:
    metrics.CHUNK_VALUES = old
  gen = np.random.default_rng(7)
  idx = np.concatenate([gen.integers(0, 60, size=(k, 60)) for k in (64, 64, 64, 64, 44)])
  rho = np.array([scipy.stats.spearmanr(a[i], t[i]).statistic for i in idx])
  assert [chunked["lo"], chunked["hi"]] == pytest.approx(list(np.quantile(rho, [0.025, 0.975])),
                                                         abs=1e-12)
  # the same scores as reference: the paired difference is exactly zero on every resample
  same = benchmarks.spearman_interval(a, t, a.copy(), n_boot=50)
  assert same["diff_lo"] == same["diff_hi"] == 0.0
  # coverage: rho_s of a bivariate normal with correlation c is (6/pi) asin(c/2)
  c, hits = 0.5, 0
  true_rho = 6 / np.pi * np.arcsin(c / 2)
  for k in range(100):
    x = np.random.default_rng(100 + k).multivariate_normal([0, 0], [[1, c], [c, 1]], size=80)
    iv = benchmarks.spearman_interval(x[:, 0], x[:, 1], n_boot=400, seed=k)
    hits += iv["lo"] <= true_rho <= iv["hi"]
  assert 85 <= hits <= 100     # nominal 95 of 100 (binomial: P(hits < 85) < 1e-4)
  # more architectures, a narrower interval (~1/sqrt(n))
  x = np.random.default_rng(1).multivariate_normal([0, 0], [[1, c], [c, 1]], size=2000)
  wide = benchmarks.spearman_interval(x[:100, 0], x[:100, 1], n_boot=400)
  narrow = benchmarks.spearman_interval(x[:, 0], x[:, 1], n_boot=400)
  ratio = (wide["hi"] - wide["lo"]) / (narrow["hi"] - narrow["lo"])
  assert 3.0 < ratio < 6.5     # sqrt(20) = 4.5


def test_spearman_interval_drops_non_finite_rows_and_names_bad_input():
  a = np.arange(20.0)
  s = a.copy()
  s[3] = np.nan
  r = a.copy()
  r[5] = np.inf
  iv = benchmarks.spearman_interval(s, a, r, n_boot=20)
  clean = benchmarks.spearman_interval(np.delete(a, [3, 5]), np.delete(a, [3, 5]),
                                       np.delete(a, [3, 5]), n_boot=20)
  assert iv == clean and iv["lo"] == iv["hi"] == 1.0
  assert all(math.isnan(v) for v in benchmarks.spearman_interval([1.0, 2.0], [1.0, 2.0]).values())
  with pytest.raises(JaxnasInputError, match="level must lie in"):
    benchmarks.spearman_interval(a, a, level=95)
  with pytest.raises(JaxnasInputError, match=r"reference \(3,\)"):
    benchmarks.spearman_interval(a, a, np.ones(3))

