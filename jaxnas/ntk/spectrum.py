"""Spectral quantities of an NTK matrix and the linearised-training loss curve they predict.

A kernel is either a matrix ``(n, n)`` or a full output kernel ``(B, B, K, K)``, which is read as
the ``(B*K, B*K)`` matrix with rows ordered (sample, output). All functions are jittable.

* trace norm ``||Theta||_tr = sum_i |lambda_i|`` (= the trace for a PSD kernel; NASI Eq. 8-9);
* condition number ``kappa = lambda_max / lambda_min`` (TE-NAS; HNAS ``condnum``), with the
  references' sentinel for undefined values;
* NASI Eq. 4 (Shu et al., ICLR 2022): under gradient descent with step ``eta`` on
  ``1/2 ||f(X) - Y||^2`` of the linearised network, the residual evolves as
  ``r_t = (I - eta Theta)^t r_0``, so with ``Theta = U diag(lambda) U^T``

      L_t = m^-1 ||r_t||^2 = m^-1 sum_i (1 - eta lambda_i)^(2t) (u_i^T r_0)^2,

  ``m`` the number of samples. NASI writes ``u_i^T Y`` (outputs at initialisation taken as 0).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxnas.errors import JaxnasInputError

#: Value the references substitute for an undefined condition number (HNAS/TE-NAS: NaN -> 1e5).
COND_SENTINEL = 1e5


def as_matrix(theta):
  """``(n, n)`` as is; ``(B, B, K, K)`` -> ``(B*K, B*K)`` with rows ordered (sample, output)."""
  if theta.ndim == 2:
    if theta.shape[0] != theta.shape[1]:
      raise JaxnasInputError(f"a kernel matrix must be square, got shape {theta.shape}")
    return theta
  if theta.ndim == 4 and theta.shape[0] == theta.shape[1] and theta.shape[2] == theta.shape[3]:
    b, k = theta.shape[0], theta.shape[2]
    return jnp.transpose(theta, (0, 2, 1, 3)).reshape(b * k, b * k)
  raise JaxnasInputError(f"a kernel must have shape (n, n) or (B, B, K, K), got {theta.shape}")


def eigh(theta):
  """Eigenvalues (ascending) and eigenvectors of the symmetrised kernel matrix."""
  m = as_matrix(theta)
  return jnp.linalg.eigh(0.5 * (m + m.T))


def eigenvalues(theta):
  """Ascending eigenvalues of the symmetrised kernel matrix."""
  m = as_matrix(theta)
  return jnp.linalg.eigvalsh(0.5 * (m + m.T))


def trace(theta):
  """``tr Theta`` (sum of the diagonal of the matrix form)."""
  return jnp.trace(as_matrix(theta))


def trace_norm(theta):
  """Nuclear norm ``sum_i |lambda_i|`` (equals the trace for PSD kernels)."""
  return jnp.sum(jnp.abs(eigenvalues(theta)))


def condition_number(theta, sentinel: float = COND_SENTINEL):
  """``lambda_max / lambda_min``; ``sentinel`` where ``lambda_min <= 0`` or the ratio is not finite.

  The references (TE-NAS, HNAS) return ``lambda_max / lambda_min`` and replace NaN by 1e5; a
  rank-deficient kernel (e.g. a cell whose output ignores its input) has ``lambda_min`` equal to 0
  up to rounding, so the ratio's sign and size are noise: it is mapped to the sentinel as well.
  """
  lam = eigenvalues(theta)
  kappa = lam[-1] / lam[0]
  return jnp.where((lam[0] > 0) & jnp.isfinite(kappa), kappa, sentinel)


def linearized_mse_curve(theta, residual0, lr: float, steps, num_samples=None):
  """NASI Eq. 4: ``L_t = m^-1 sum_i (1 - lr lambda_i)^(2t) (u_i^T r_0)^2`` for each ``t`` in ``steps``.

  Args:
    theta: kernel ``(B, B, K, K)`` (or ``(n, n)``, then ``residual0`` is ``(n,)``).
    residual0: ``f_0(X) - Y``, shape ``(B, K)`` (or ``(n,)``); pass ``-Y`` for NASI's form.
    lr: gradient-descent step ``eta`` on ``1/2 ||f(X) - Y||^2``.
    steps: integer array of step counts ``t``.
    num_samples: ``m``; default ``B`` (the leading axis of ``residual0``).

  Returns:
    ``(len(steps),)`` losses.
  """
  lam, u = eigh(theta)
  r0 = jnp.reshape(residual0, (-1,))
  if r0.shape[0] != lam.shape[0]:
    raise JaxnasInputError(
        f"residual has {r0.shape[0]} entries but the kernel is {lam.shape[0]} x {lam.shape[0]}")
  m = residual0.shape[0] if num_samples is None else num_samples
  proj2 = jnp.square(u.T @ r0)
  t = jnp.asarray(steps)[:, None]
  return jnp.sum((1.0 - lr * lam[None, :]) ** (2 * t) * proj2[None, :], axis=1) / m
