"""jacob_cov: the summed-output Jacobian equals the explicit batched Jacobian (jacrev over inputs),
the score equals numpy's corrcoef/eig in float64 (the reference's computation), degenerate
Jacobians give the documented finite floor, and the NB201 shared build equals the discrete one."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.proxies.jacob_cov import K, floor_score, input_jacobian, jacob_cov_score
from tests.proxies.test_snip import (ARCH, discrete, nb201_setup, run_proxy, toy_apply, toy_data,
                                     toy_params)


def _reference_score(jac):
  """The reference's numpy computation, in float64."""
  corr = np.corrcoef(np.asarray(jac, np.float64))
  v = np.linalg.eig(corr)[0].real
  return -np.sum(np.log(v + K) + 1.0 / (v + K))


def test_jacobian_equals_explicit_batched_jacobian_and_score_on_toy():
  params = toy_params(jax.random.key(5))
  x, _ = toy_data(n=8)
  f = lambda x: toy_apply(params, x)              # BN couples the samples
  full = jax.jit(jax.jacrev(f))(x)                # (B, classes, B, H, W, 3)
  want = np.asarray(full, np.float64).sum(axis=(0, 1)).reshape(x.shape[0], -1)
  jac = jax.jit(lambda x: input_jacobian(f, x))(x)
  np.testing.assert_allclose(jac, want, rtol=1e-4, atol=1e-7)
  score = float(jax.jit(jacob_cov_score)(jac))
  np.testing.assert_allclose(score, _reference_score(want), rtol=1e-4)
  assert score > floor_score(x.shape[0])


def test_degenerate_jacobian_gives_the_rank_one_floor():
  n = 6
  v = np.linalg.eigvalsh(np.ones((n, n)))         # a fully correlated correlation matrix
  rank_one = -np.sum(np.log(np.maximum(v, 0) + K) + 1.0 / (np.maximum(v, 0) + K))
  np.testing.assert_allclose(floor_score(n), rank_one, rtol=1e-9)
  score = jax.jit(jacob_cov_score)
  jac = jax.random.normal(jax.random.key(0), (n, 30))
  assert float(score(jnp.zeros((n, 30)))) == np.float32(floor_score(n))
  # one constant row is enough (its correlations are undefined)
  assert float(score(jac.at[2].set(1.0))) == np.float32(floor_score(n))
  assert np.isfinite(float(score(jac))) and float(score(jac)) > floor_score(n)


def test_jacob_cov_nb201_equals_discrete_network_and_floor_for_all_none():
  net, variables, batch = nb201_setup(n=12)
  got, none = run_proxy("jacob_cov", net, variables, batch, [ARCH, np.zeros(6)])
  d, vd = discrete(ARCH, variables)
  jac = jax.jit(jax.grad(lambda x: jnp.sum(d.apply(vd, x))))(batch.x)
  np.testing.assert_allclose(got, _reference_score(jac.reshape(12, -1)), rtol=1e-4)
  assert none == np.float32(floor_score(12))
