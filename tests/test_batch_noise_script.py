"""experiments/batch_noise.py: the variance split of scores into architecture and minibatch."""


import numpy as np
import pytest

from tests.conftest import experiment_script


@pytest.fixture(scope="module")
def script():
  return experiment_script("batch_noise")


def test_scores_that_ignore_the_batch_have_no_noise_and_a_stable_ranking(script):
  arch = np.random.default_rng(0).normal(size=30)
  r = script.noise_summary(np.tile(arch, (4, 1)))
  assert r["noise_share"] == 0.0
  assert r["spearman_between_batches_min"] == pytest.approx(1.0)
  assert r["spearman_shared_vs_fresh_batch"] == pytest.approx(1.0)


def test_noise_share_matches_the_variances_it_is_built_from(script):
  rng = np.random.default_rng(1)
  arch = 2.0 * rng.normal(size=400)                 # between-architecture variance 4
  s = arch + rng.normal(size=(6, 400))              # within-architecture variance 1
  r = script.noise_summary(s)
  assert r["noise_share"] == pytest.approx(1 / 5, abs=0.05)
  assert r["std_within_arch"] == pytest.approx(1.0, abs=0.05)
  # the fresh-batch ranking takes each architecture's score from another draw
  fresh = s[np.arange(400) % 6, np.arange(400)]
  assert not np.array_equal(fresh, s[0])
  assert 0.6 < r["spearman_shared_vs_fresh_batch"] < 0.95


def test_pure_batch_noise_has_a_share_near_one_and_no_stable_ranking(script):
  s = np.random.default_rng(2).normal(size=(5, 300))
  r = script.noise_summary(s)
  assert r["noise_share"] > 0.95
  assert abs(r["spearman_between_batches_mean"]) < 0.1
