"""Spectral helpers on matrices with known spectra, and NASI Eq. 4 vs an explicit iteration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.errors import JaxnasInputError
from jaxnas.ntk import spectrum


def _rotated(eigs, seed=0):
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(eigs), len(eigs))))
  return jnp.asarray(q @ np.diag(eigs) @ q.T, jnp.float32)


def test_eigen_trace_cond_on_known_spectrum():
  m = _rotated([0.5, 1.0, 2.0, 8.0])
  np.testing.assert_allclose(jax.jit(spectrum.eigenvalues)(m), [0.5, 1.0, 2.0, 8.0], rtol=1e-5)
  np.testing.assert_allclose(spectrum.trace(m), 11.5, rtol=1e-6)
  np.testing.assert_allclose(spectrum.trace_norm(m), 11.5, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(spectrum.condition_number)(m), 16.0, rtol=1e-4)


def test_trace_norm_of_indefinite_matrix_is_sum_of_absolute_eigenvalues():
  m = _rotated([-3.0, 1.0, 2.0])
  np.testing.assert_allclose(spectrum.trace_norm(m), 6.0, rtol=1e-5)
  np.testing.assert_allclose(spectrum.trace(m), 0.0, atol=1e-5)


def test_condition_number_sentinel_for_singular_and_indefinite():
  assert float(spectrum.condition_number(jnp.diag(jnp.array([0.0, 1.0, 2.0])))) == 1e5
  assert float(spectrum.condition_number(jnp.diag(jnp.array([-1e-7, 1.0])))) == 1e5
  assert float(spectrum.condition_number(jnp.full((2, 2), jnp.nan))) == 1e5


def test_full_output_kernel_is_read_with_sample_major_rows():
  b, k = 3, 2
  j = np.random.default_rng(1).normal(size=(b, k, 5))
  full = np.einsum("ikp,jlp->ijkl", j, j)
  flat = j.reshape(b * k, 5)
  np.testing.assert_allclose(spectrum.as_matrix(jnp.asarray(full)), flat @ flat.T, rtol=1e-5)
  with pytest.raises(JaxnasInputError, match="shape"):
    spectrum.as_matrix(jnp.zeros((2, 3)))


def test_linearized_curve_equals_explicit_residual_iteration():
  rng = np.random.default_rng(2)
  a = rng.normal(size=(6, 6))
  theta = jnp.asarray(a @ a.T + 0.1 * np.eye(6))
  r0 = jnp.asarray(rng.normal(size=(3, 2)))
  eta = 0.5 / float(jnp.max(jnp.linalg.eigvalsh(theta)))
  steps = jnp.arange(0, 30, 7)
  got = spectrum.linearized_mse_curve(theta, r0, eta, steps)
  r, want = np.asarray(r0).reshape(-1), []
  for t in range(30):
    if t in set(np.asarray(steps).tolist()):
      want.append(np.sum(r ** 2) / 3)
    r = r - eta * np.asarray(theta) @ r
  np.testing.assert_allclose(got, want, rtol=1e-4)
  with pytest.raises(JaxnasInputError, match="residual"):
    spectrum.linearized_mse_curve(theta, jnp.zeros((4,)), eta, steps)
