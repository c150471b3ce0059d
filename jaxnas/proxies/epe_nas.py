"""EPE-NAS: per-class correlation of input Jacobians (Lopes, Alexandre, Santos, ICANN 2021).

We follow the public reference implementation as reused by NASLib (``measures/epe_nas.py``:
``get_batch_jacobian`` + ``eval_score_perclass``):

1. ``J = d(sum of all logits of the batch) / dx`` ``(B, H*W*3)``: one backward pass through the
   batched network (train-mode BatchNorm couples the samples, as in the reference).
2. For every class ``c`` present in the labels, ``R_c = corrcoef(rows of J with label c)`` and
   ``s_c = sum_{i,j} log(|R_c[i, j]| + 1e-5)`` (a class with one sample has ``R_c = 1``).
3. ``num_classes <= 100``: score ``= sum_c |s_c|``. ``num_classes > 100``: ``s_c`` is divided by
   the class size, classes with a single sample are dropped (the reference's ``len()`` of a scalar
   raises and the class is skipped) and the score is ``sum_{c, c'} |s_c - s_c'| / #classes``.

Higher is better (less correlated Jacobians within a class).

Deviation: a Jacobian row with zero variance (an output that ignores the input, e.g. a cell of
``none`` edges) makes the reference's correlation NaN and the score NaN. We count such undefined
correlations as ``|R| = 1`` (fully correlated, the least informative case), so a network whose
output does not depend on its input gets ``sum_c n_c^2 log(1 + 1e-5)`` ~ 0, the worst score.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnas.errors import JaxnasInputError
from jaxnas.proxies.registry import register

#: Added to |correlation| inside the log (reference value).
K_EPS = 1e-5
#: Above this many classes the reference switches to the pairwise-difference aggregate.
MANY_CLASSES = 100


def input_jacobian(net, variables, x):
  """``d(sum of all outputs)/dx`` per sample, flattened, and the number of outputs per sample.

  Returns:
    ``(J (B, H*W*C), num_outputs)``: one reverse pass of the batched network with cotangent ones.
  """
  y, pullback = jax.vjp(lambda x: net.apply(variables, x), x)
  (g,) = pullback(jnp.ones_like(y))
  return g.reshape(x.shape[0], -1), y.shape[-1]


def row_correlation(j):
  """``numpy.corrcoef`` of the rows of ``j`` ``(B, D)``: ``(B, B)``, clipped to [-1, 1].

  Undefined entries (a row with zero variance) are NaN, as in numpy.
  """
  c = j - jnp.mean(j, axis=1, keepdims=True)
  cov = c @ c.T
  d = jnp.sqrt(jnp.diagonal(cov))
  return jnp.clip(cov / (d[:, None] * d[None, :]), -1.0, 1.0)


def score_per_class(j, labels, num_classes: int):
  """EPE-NAS aggregate of the per-class correlation scores (see module docstring).

  Args:
    j: Jacobian rows ``(B, D)``.
    labels: int labels ``(B,)`` in ``[0, num_classes)``.
    num_classes: number of classes of the task (static); selects the aggregate.

  Returns:
    scalar score (float32).
  """
  r = row_correlation(j)
  r = jnp.where(jnp.isnan(r), 1.0, jnp.abs(r))
  logs = jnp.log(r + K_EPS)
  y = jax.nn.one_hot(labels, num_classes, dtype=logs.dtype)            # (B, K)
  s = jnp.einsum("ic,ij,jc->c", y, logs, y)                             # s_c
  n = jnp.sum(y, axis=0)                                                # class sizes
  if num_classes <= MANY_CLASSES:
    return jnp.sum(jnp.abs(s))                                          # absent classes add 0
  present = n >= 2
  s = jnp.where(present, s / jnp.maximum(n, 1.0), 0.0)
  diff = jnp.abs(s[:, None] - s[None, :]) * (present[:, None] & present[None, :])
  count = jnp.sum(present)
  return jnp.where(count > 0, jnp.sum(diff) / jnp.maximum(count, 1), 0.0)


@register("epe_nas", needs_labels=True)
def epe_nas(net, variables, batch, key):
  """EPE-NAS score: sum over classes of |sum log(|corr(J_i, J_j)| + 1e-5)| (Lopes et al. 2021).

  ``J = d(sum of logits)/dx`` of the batched network (one backward pass, train-mode BN); per class
  ``s_c = sum_{i,j in c} log(|corrcoef(J)_ij| + 1e-5)``; score ``sum_c |s_c|`` (> 100 classes:
  ``sum_{c,c'} |s_c/n_c - s_c'/n_c'| / #classes``). NASLib ``epe_nas``; undefined correlations of
  constant Jacobian rows count as |r| = 1 instead of NaN.
  """
  del key
  if batch.y is None or batch.y.shape[:1] != batch.x.shape[:1]:
    got = None if batch.y is None else batch.y.shape
    raise JaxnasInputError("epe_nas needs one integer label per input image (batch.y of shape "
                           f"({batch.x.shape[0]},)), got {got}")
  j, num_classes = input_jacobian(net, variables, batch.x)
  return score_per_class(j, batch.y, num_classes)
