"""jacob_cov: spectrum of the correlation of input Jacobians (Mellor et al. 2021, arXiv v1).

References: J. Mellor, J. Turner, A. Storkey, E. J. Crowley, "Neural Architecture Search without
Training", arXiv:2006.04647v1 (2020; the Jacobian-covariance score of the first version); used as
``jacob_cov`` by Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021
(SamsungLabs/zero-cost-nas); methods-spec §7.1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnas.proxies.registry import register

#: The reference's regulariser ``k``.
K = 1e-5


def input_jacobian(apply_fn, x):
  """``J[n] = d(sum of all outputs)/d x[n]`` flattened: ``(N, H*W*C)``.

  One backward pass of the summed outputs through the *batched* map, as the reference
  (``y.backward(ones_like(y))``): under batch-statistics BN the samples interact, and row ``n`` is
  the derivative of the total output with respect to input ``n``.
  """
  j = jax.grad(lambda x: jnp.sum(apply_fn(x)))(x)
  return j.reshape(x.shape[0], -1)


def floor_score(n: int, k: float = K) -> float:
  """The lowest value of the score over ``n x n`` correlation matrices: rank one (eigenvalues
  ``n, 0, ..., 0``), ``-(log(n+k) + 1/(n+k)) - (n-1)(log k + 1/k)``."""
  import math
  return -(math.log(n + k) + 1.0 / (n + k)) - (n - 1) * (math.log(k) + 1.0 / k)


def jacob_cov_score(jac, k: float = K):
  """``-sum_i [log(v_i + k) + 1/(v_i + k)]`` over the eigenvalues ``v`` of ``corrcoef(jac)``.

  Args:
    jac: ``(N, D)`` one row per sample.
    k: regulariser (1e-5 in the reference).

  Returns:
    Scalar in ``jac``'s dtype. Eigenvalues below 0 (round-off: a correlation matrix is positive
    semi-definite) are clipped to 0. If any row is constant (zero variance, e.g. a zero Jacobian
    because the output does not depend on the input), the correlation is undefined (the reference
    gets NaN and NASLib ranks it last); we return :func:`floor_score`, the score of a fully
    correlated (rank-one) matrix, which is the minimum over all correlation matrices, so such
    architectures rank below every other one.
  """
  n = jac.shape[0]
  z = jac - jnp.mean(jac, axis=1, keepdims=True)
  norm = jnp.sqrt(jnp.sum(jnp.square(z), axis=1))
  degenerate = jnp.any(norm <= jnp.finfo(jac.dtype).tiny)
  z = z / jnp.where(degenerate, 1.0, norm)[:, None]
  corr = jnp.clip(z @ z.T, -1.0, 1.0)
  v = jnp.maximum(jnp.linalg.eigvalsh(corr), 0.0)
  score = -jnp.sum(jnp.log(v + k) + 1.0 / (v + k))
  return jnp.where(degenerate, jnp.asarray(floor_score(n, k), score.dtype), score)


@register("jacob_cov", batch_size=64, cpu_eager=True)
def jacob_cov(net, variables, batch, key):
  """Jacobian covariance ``-sum_i [log(v_i + k) + 1/(v_i + k)]``, ``v = eig(corrcoef(J))``, k=1e-5.

  ``J`` ``(N, H*W*3)``: row ``n`` is ``d(sum over the batch and classes of the logits)/dx_n`` on the
  minibatch (64 images in the reference; labels unused), PyTorch-default init, the network's BN
  mode (train-mode batch statistics by default). ``corrcoef`` is over the rows (``N x N``).

  Degenerate architectures whose output does not depend on the input (e.g. a cell without any
  path from its input to its output) have ``J = 0``: the reference's correlation is NaN. We return
  the finite floor ``-(log(N+k) + 1/(N+k)) - (N-1)(log k + 1/k)`` (about ``-1e5 (N-1)``), the
  lowest value any correlation matrix can give. ``key`` is unused.

  References: Mellor et al., "Neural Architecture Search without Training", arXiv:2006.04647v1;
  Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021.
  """
  del key
  jac = input_jacobian(lambda x: net.apply(variables, x), batch.x)
  return jacob_cov_score(jac)
