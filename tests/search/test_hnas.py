"""HNAS: the objective, the GP/EI optimiser against closed forms, and the BO loop."""

import csv

import numpy as np
import pytest
import scipy.integrate
import scipy.stats

from jaxnas import benchmarks, search
from jaxnas.errors import JaxnasInputError
from jaxnas.search import gp, hnas
from jaxnas.spaces import nb201
from tests.conftest import TINY


def _timeless(trace):
  return [{k: v for k, v in t.items() if k != "seconds"} for t in trace]


def test_objective_formula():
  f = hnas.objective([2.0, 10.0], [5.0, 1.0], T=0.001, c=-1.0, scale=5e3)
  want = [0.1 * abs(4 - 25) + 5 / (2 + 1e-6), 0.1 * abs(100 - 25) + 1 / (10 + 1e-6)]
  np.testing.assert_allclose(f, want, rtol=1e-12)


def test_matern52_and_marginal_likelihood_against_scipy():
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(6, 2))
  y = rng.normal(size=6)
  r = np.linalg.norm(x[:, None] - x[None], axis=-1) / 0.7
  k = (1 + np.sqrt(5) * r + 5 * r ** 2 / 3) * np.exp(-np.sqrt(5) * r)
  np.testing.assert_allclose(gp.matern52(x, x, 0.7), k, rtol=1e-12)
  want = scipy.stats.multivariate_normal(np.zeros(6), k + 1e-6 * np.eye(6)).logpdf(y)
  np.testing.assert_allclose(gp.log_marginal_likelihood(x, y, 0.7), want, rtol=1e-9)


def test_gp_interpolates_and_is_uncertain_away_from_data():
  rng = np.random.default_rng(1)
  x = np.linspace(0, 1, 7)[:, None]
  y = np.sin(6 * x[:, 0]) * 3 + 10
  model = gp.fit(x, y, rng)
  mu, sd = model.predict(x)
  np.testing.assert_allclose(mu, y, atol=1e-3)
  assert np.all(sd < 1e-2)
  _, sd_far = model.predict([[3.0]])
  assert sd_far[0] > 10 * sd.max()
  # the fitted length scale maximises the marginal likelihood (check a grid)
  yn = (y - y.mean()) / y.std()
  best = gp.log_marginal_likelihood(x, yn, model.length)
  for l in np.geomspace(1e-3, 1e3, 25):
    assert gp.log_marginal_likelihood(x, yn, l) <= best + 1e-6


def test_expected_improvement_matches_numerical_integration():
  for mu, sigma, ymax in ((0.3, 0.5, 0.1), (-1.0, 2.0, 0.5), (2.0, 0.1, 1.0)):
    want, _ = scipy.integrate.quad(
        lambda v: max(v - ymax, 0) * scipy.stats.norm.pdf(v, mu, sigma), mu - 12 * sigma,
        mu + 12 * sigma, points=[ymax], limit=200)
    np.testing.assert_allclose(gp.expected_improvement(mu, sigma, ymax), want, rtol=1e-6)
  assert gp.expected_improvement(1.0, 0.0, 0.5) == 0.5


def test_suggest_maximises_the_acquisition():
  rng = np.random.default_rng(2)
  x = np.array([[0.1, -3.0], [0.5, -2.0], [0.9, -1.0], [0.3, -0.5]])
  y = np.array([1.0, 3.0, 2.0, 0.5])
  model = gp.fit(x, y, rng)
  bounds = [(0.0, 1.0), (-4.0, 0.0)]
  best = gp.suggest(model, bounds, y.max(), np.random.default_rng(3))
  assert 0 <= best[0] <= 1 and -4 <= best[1] <= 0
  grid = np.stack(np.meshgrid(np.linspace(0, 1, 60), np.linspace(-4, 0, 60)), -1).reshape(-1, 2)
  ei = gp.acquisition(model, grid, "ei", y.max())
  assert gp.acquisition(model, best[None], "ei", y.max())[0] >= ei.max() - 1e-9


def _scores_file(tmp_path, n=300, seed=0):
  rng = np.random.default_rng(seed)
  idx = np.sort(rng.choice(15625, n, replace=False))
  path = tmp_path / "scores.csv"
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["index", "arch_str", "proxy", "score"])
    for i in idx:
      w.writerow([i, "", "hnas_trace", rng.uniform(1, 400)])
      w.writerow([i, "", "hnas_cond", rng.uniform(5, 5000)])
  return str(path), idx


def test_bo_loop_with_precomputed_metrics(tmp_path):
  path, idx = _scores_file(tmp_path)
  kw = dict(scores_file=path, queries=9, pool=40)
  a = search.search("hnas", "nb201", seed=0, **kw)
  b = search.search("hnas", "nb201", seed=0, **kw)
  assert np.array_equal(a.arch, b.arch) and _timeless(a.trace) == _timeless(b.trace)
  assert len(a.trace) == 9
  queried = [t["index"] for t in a.trace]
  assert len(set(queried)) == 9 and set(queried) <= set(idx.tolist())
  # initial probes: min(floor(0.25 * 9), 10) = 2 at T = linspace(0, 1, 2), c = -2
  assert [(t["T"], t["c"]) for t in a.trace[:2]] == [(0.0, -2.0), (1.0, -2.0)]
  for t in a.trace[2:]:
    assert 0 <= t["T"] <= 1 and -4 <= t["c"] <= 0
  metrics = hnas.read_scores_file(path)
  for t in a.trace:
    assert (t["M"], t["kappa"]) == metrics[t["index"]]
  pools = [t["pool"] for t in a.trace]          # 40 draws per query, accumulated, deduplicated
  assert pools[0] == 40 and all(40 <= p2 - p1 + 40 <= 80 for p1, p2 in zip(pools, pools[1:]))
  assert pools[-1] <= 300
  # observed = 12-epoch validation accuracy; the result is the best observed architecture
  for t in a.trace:
    assert t["observed"] == benchmarks.accuracy(t["index"], "cifar10valid_val12")
  best = max(a.trace, key=lambda t: t["observed"])
  assert nb201.to_index(a.arch) == best["index"] and a.extra["best_observed"] == best["observed"]
  assert a.queries == 9 and search.to_json(a)["queries"] == 9      # benchmark accuracies seen


def test_first_query_is_the_pool_argmin(tmp_path):
  path, idx = _scores_file(tmp_path, n=50, seed=1)
  res = search.search("hnas", "nb201", seed=3, scores_file=path, queries=1, pool=50)
  metrics = hnas.read_scores_file(path)
  # the pool is the whole (50-architecture) universe; queries=1 -> one probe at T=0, c=-2
  f = {i: hnas.objective(*metrics[i], 0.0, -2.0, 5e3) for i in metrics}
  assert res.trace[0]["index"] == min(f, key=f.get)


def test_metrics_on_demand_on_a_tiny_network():
  res = search.search("hnas", "nb201", seed=0, queries=2, pool=3, config=TINY, resolution=8,
                      batch_size=8, chunk_size=3)
  assert len(res.trace) == 2 and res.extra["n_scored"] <= 6
  assert all(np.isfinite(t["M"]) and t["M"] > 0 and t["kappa"] >= 1 for t in res.trace)


def test_bad_inputs(tmp_path):
  with pytest.raises(JaxnasInputError, match="does not exist"):
    search.search("hnas", "nb201", scores_file=str(tmp_path / "none.csv"))
  with pytest.raises(JaxnasInputError, match="acquisition 'pi'"):
    search.search("hnas", "nb201", acquisition="pi")
  with pytest.raises(JaxnasInputError, match="benchmark metric"):
    search.search("hnas", "nb201", observed="cifar10_test20")
