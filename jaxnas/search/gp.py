"""A small Gaussian-process Bayesian optimiser (numpy/scipy) with the defaults of
``bayesian-optimization`` 1.2.0, which HNAS uses (methods-spec §4.3, §8.7).

Why our own: the library (and the scikit-learn it needs) is not part of the pinned stack, the GP
is tiny (at most a few dozen observations of 2 hyperparameters), and a 100-line version is
deterministic from one seed and testable against closed forms. What it reproduces:

* kernel: Matern with nu = 5/2 and one isotropic length scale ``l`` (no amplitude; scikit-learn's
  ``Matern(nu=2.5)``)::

      k(r) = (1 + sqrt(5) r / l + 5 r^2 / (3 l^2)) exp(-sqrt(5) r / l)

* ``alpha`` = 1e-6 added to the diagonal, ``normalize_y``: targets standardised (mean 0, std 1)
  before fitting and predictions mapped back;
* ``l`` maximises the log marginal likelihood
  ``-1/2 y^T K^-1 y - 1/2 log|K| - n/2 log 2 pi`` by L-BFGS-B over ``log l`` in
  ``[log 1e-5, log 1e5]`` from ``l = 1`` and ``n_restarts`` = 5 log-uniform starts, plus (our
  addition) the best of a 41-point log grid: the likelihood is flat and multi-modal (a
  degenerate white-noise mode at tiny ``l``; Cholesky failures at large ``l``), and the grid start
  makes the fit robust;
* acquisition: expected improvement with ``xi`` = 0, ``a = mu - y_max - xi``,
  ``EI = a Phi(a / sigma) + sigma phi(a / sigma)`` (maximisation), or UCB ``mu + kappa sigma``;
  maximised over 10,000 uniform random points and then 10 L-BFGS-B runs from random starts.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.stats

LOG_BOUNDS = (np.log(1e-5), np.log(1e5))
ALPHA = 1e-6


def matern52(x1, x2, length: float):
  """Matern-5/2 kernel matrix ``(n1, n2)`` between rows of ``x1`` and ``x2``."""
  d = np.sqrt(np.maximum(np.sum((x1[:, None, :] - x2[None, :, :]) ** 2, -1), 0.0)) / length
  s5 = np.sqrt(5.0) * d
  return (1.0 + s5 + s5 ** 2 / 3.0) * np.exp(-s5)


class GP(NamedTuple):
  """A fitted GP: training inputs, standardisation, length scale and Cholesky factor."""
  x: np.ndarray
  y_mean: float
  y_std: float
  length: float
  chol: np.ndarray
  weights: np.ndarray     # K^-1 y_normalised

  def predict(self, xs):
    """Posterior mean and standard deviation ``(n,)`` at ``xs`` ``(n, d)``, in target units."""
    xs = np.atleast_2d(np.asarray(xs, np.float64))
    ks = matern52(xs, self.x, self.length)
    mu = ks @ self.weights
    v = scipy.linalg.solve_triangular(self.chol, ks.T, lower=True)
    var = np.maximum(1.0 - np.sum(v * v, 0), 0.0)
    return mu * self.y_std + self.y_mean, np.sqrt(var) * self.y_std


def _normalise(y):
  m = float(np.mean(y))
  s = float(np.std(y))
  return m, (s if s > 0 else 1.0)


def log_marginal_likelihood(x, y_norm, length: float, alpha: float = ALPHA) -> float:
  """``log p(y | x, l)`` of standardised targets under the Matern-5/2 GP."""
  k = matern52(x, x, length) + alpha * np.eye(len(x))
  try:
    c = np.linalg.cholesky(k)
  except np.linalg.LinAlgError:
    return -np.inf
  w = scipy.linalg.cho_solve((c, True), y_norm)
  return float(-0.5 * y_norm @ w - np.sum(np.log(np.diag(c))) - 0.5 * len(x) * np.log(2 * np.pi))


def fit(x, y, rng: np.random.Generator, n_restarts: int = 5, alpha: float = ALPHA) -> GP:
  """Fits the GP to observations ``x`` ``(n, d)``, ``y`` ``(n,)`` (length scale by maximum
  marginal likelihood, ``n_restarts`` extra random starts)."""
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  m, s = _normalise(y)
  yn = (y - m) / s

  def nll(theta):
    v = log_marginal_likelihood(x, yn, float(np.exp(theta[0])), alpha)
    return -v if np.isfinite(v) else 1e25

  grid = np.linspace(*LOG_BOUNDS, 41)
  g0 = grid[int(np.argmin([nll([g]) for g in grid]))]
  starts = [0.0, g0] + list(rng.uniform(*LOG_BOUNDS, size=n_restarts))
  best = None
  for s0 in starts:
    r = scipy.optimize.minimize(nll, [s0], method="L-BFGS-B", bounds=[LOG_BOUNDS])
    if best is None or r.fun < best.fun:
      best = r
  length = float(np.exp(best.x[0]))
  k = matern52(x, x, length) + alpha * np.eye(len(x))
  c = np.linalg.cholesky(k)
  return GP(x, m, s, length, c, scipy.linalg.cho_solve((c, True), yn))


def expected_improvement(mu, sigma, y_max: float, xi: float = 0.0):
  """EI for maximisation: ``a Phi(a/sigma) + sigma phi(a/sigma)``, ``a = mu - y_max - xi``."""
  mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
  a = mu - y_max - xi
  with np.errstate(divide="ignore", invalid="ignore"):
    z = np.where(sigma > 0, a / sigma, 0.0)
  return np.where(sigma > 0, a * scipy.stats.norm.cdf(z) + sigma * scipy.stats.norm.pdf(z),
                  np.maximum(a, 0.0))


def acquisition(gp: GP, xs, kind: str, y_max: float, xi: float = 0.0, kappa: float = 2.576):
  """Acquisition values ``(n,)`` at the points ``xs`` ``(n, d)`` (maximisation).

  With ``mu``, ``sigma`` the posterior of :meth:`GP.predict`: ``kind='ei'`` gives the expected
  improvement (Jones et al., 1998; :func:`expected_improvement`)
  ``EI = a Phi(a / sigma) + sigma phi(a / sigma)``, ``a = mu - y_max - xi``; any other ``kind`` the
  upper confidence bound (Srinivas et al., 2010) ``UCB = mu + kappa sigma``.
  """
  mu, sigma = gp.predict(xs)
  if kind == "ei":
    return expected_improvement(mu, sigma, y_max, xi)
  return mu + kappa * sigma


def suggest(gp: GP, bounds, y_max: float, rng: np.random.Generator, kind: str = "ei",
            xi: float = 0.0, kappa: float = 2.576, n_warmup: int = 10_000, n_iter: int = 10):
  """The point in the box ``bounds`` ``[(lo, hi), ...]`` maximising the acquisition."""
  b = np.asarray(bounds, np.float64)
  xs = rng.uniform(b[:, 0], b[:, 1], size=(n_warmup, len(b)))
  vals = acquisition(gp, xs, kind, y_max, xi, kappa)
  x_best, v_best = xs[int(np.argmax(vals))], float(np.max(vals))
  for x0 in rng.uniform(b[:, 0], b[:, 1], size=(n_iter, len(b))):
    r = scipy.optimize.minimize(lambda x: -acquisition(gp, x[None], kind, y_max, xi, kappa)[0],
                                x0, method="L-BFGS-B", bounds=b)
    if r.success and -float(r.fun) >= v_best:
      x_best, v_best = np.clip(r.x, b[:, 0], b[:, 1]), -float(r.fun)
  return x_best
