"""NASWOT: the log-determinant of the ReLU binary-code kernel (Mellor et al., ICML 2021).

For a minibatch of B inputs, every ReLU of the network gives each input a binary code
``c_i = 1[relu input > 0]`` (flattened over space and channels). The kernel sums, over every ReLU,
the number of units on which two inputs agree::

    K = sum_relu  c c^T + (1 - c)(1 - c)^T          (B, B);   K_ij = N_A - Hamming(c_i, c_j)

and the score is ``log |det K|`` (``slogdet``; higher is better). This is the second version of the
paper as implemented in NASLib / zero-cost-nas ``measures/nwot.py`` (forward hooks on every
``nn.ReLU`` input, methods-spec §7.2).

Implementation: the network's ``relu_probe`` computes each ReLU's contribution and sums it over
every ReLU of the operations the architecture uses, with multiplicity (a node feeding two convs has
two ReLUs, as in PyTorch). On NB101 and DARTS only the unrolled network of one architecture has
the probe (the ``'eager'`` executor, which ``'auto'`` picks for it); DARTS' ReLUs are those heading
each cell's two preprocessing ops and its kept sep/dil convs and stride-2 skips (the stem and the
head have none). ``K`` holds integers below 2**24 for NB201 sizes and DARTS' (C=36, 20 cells, 32x32:
at most ~9e6 units), so it is exact in float32; the determinant is taken of ``K / N_A`` (unit
diagonal) and ``B log N_A`` added back.

Deviations, all documented:

* Batch size: we register 64, the common batch of NASLib's zero-cost runner (whose NB201 result on
  the 500-architecture subset is rho = 0.804); the paper uses 128. The caller's batch is used.
* Singular kernels (two inputs with identical codes, or a degenerate cell) give ``-inf`` in the
  reference. ``K`` is an integer matrix, so ``|det K| >= 1`` whenever ``det K != 0``: we return
  ``log max(|det K|, 1)``, which equals the reference on every non-singular kernel and gives the
  worst possible score, 0, to singular ones (also to float round-off making a singular ``K`` look
  slightly non-singular with ``|det| < 1``).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxnas.proxies.registry import register
from jaxnas.spaces import sum_probes

#: Minibatch size registered for NASWOT (NASLib's zero-cost runner; the paper uses 128).
BATCH_SIZE = 64


def relu_codes(x):
  """Binary codes ``1[x > 0]`` of one ReLU input, flattened per sample: ``(B, D)`` float32."""
  return (x > 0).reshape(x.shape[0], -1).astype(jnp.float32)


def code_kernel(x):
  """One ReLU's NASWOT kernel ``c c^T + (1 - c)(1 - c)^T`` ``(B, B)`` from its input ``x``."""
  c = relu_codes(x)
  return c @ c.T + (1.0 - c) @ (1.0 - c).T


def kernel(net, variables, x):
  """NASWOT kernel ``K`` ``(B, B)`` of ``net`` on inputs ``x`` (summed over every ReLU)."""
  _, state = net.replace(relu_probe=code_kernel).apply(variables, x, mutable=["intermediates"])
  return sum_probes(state["intermediates"])


def log_abs_det(k):
  """``log max(|det K|, 1)`` of an integer kernel ``K`` with a positive diagonal.

  Computed as ``slogdet(K / n) + B log n`` with ``n = max diag K`` (float32). Singular kernels
  (``det K = 0``) give 0, the lower bound of ``log |det K|`` over non-singular integer matrices.
  """
  n = jnp.max(jnp.diagonal(k))
  n = jnp.where(n > 0, n, 1.0)
  sign, logdet = jnp.linalg.slogdet(k / n)
  logdet = logdet + k.shape[0] * jnp.log(n)
  ok = (sign != 0) & jnp.isfinite(logdet)
  return jnp.where(ok, jnp.maximum(logdet, 0.0), 0.0)


@register("nwot", batch_size=BATCH_SIZE, requires=("relu_probe",))
def nwot(net, variables, batch, key):
  """NASWOT score log|det K| of the ReLU binary-code kernel (Mellor et al. 2021; NASLib nwot).

  ``K = sum_relu c c^T + (1-c)(1-c)^T`` with ``c = 1[relu input > 0]`` per sample (B, D); the
  score is ``log max(|det K|, 1)`` (singular kernels: 0, the reference's -inf). Network in the
  caller's BN mode (train-mode batch statistics by default, as NASLib), default initialisation.
  """
  del key
  return log_abs_det(kernel(net, variables, batch.x))
