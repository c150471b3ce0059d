"""``ntk_trace``: the exact trace of the empirical NTK (:mod:`jaxnas.ntk.empirical`).

    ntk_trace = ||Theta_0||_tr = tr(J J^T) = sum_{x in X} ||d f(x) / d theta||_F^2

over every sample of the batch and every logit, ``theta`` all trainable parameters (NASI Eq. 8-9,
Shu et al., ICLR 2022; the exact quantity NASI's cheap estimate ``nasi`` stands for).

Conventions (chosen here; NASI's theory has no BatchNorm): the network runs with BN in *eval mode*
(``bn='running'``: the stored statistics, which at initialisation are mean 0 / variance 1, so every
BN is the affine map ``gamma * x / sqrt(1 + eps) + beta``) so samples do not interact and the
kernel's diagonal is computed one sample at a time (uncoupled samples), in blocks of at most 8
samples (the full Jacobian of a 64-image batch of the full-size NB201 network is 4.3 GB). With
train-mode BN the exact trace costs a full-batch reverse pass per (sample, logit), i.e. ``B`` times
more: use :func:`jaxnas.ntk.network_ntk` for it. Batch: the caller's (64 by default).
"""

import jax.numpy as jnp

from jaxnas.proxies.registry import register

#: Most samples whose per-sample Jacobians are held at once.
MAX_SAMPLE_CHUNK = 8


def _chunk(n: int) -> int:
  return max(d for d in range(1, min(n, MAX_SAMPLE_CHUNK) + 1) if n % d == 0)


@register("ntk_trace", requires=("bn", "reduction_bn"))
def ntk_trace(net, variables, batch, key):
  """Exact empirical NTK trace sum_x ||df(x)/dtheta||_F^2 (all logits, all params, eval-mode BN).

  NASI's ||Theta_0||_tr (Shu et al., ICLR 2022, Eq. 9), computed by Jacobian contraction
  (:func:`jaxnas.ntk.network_ntk`, diagonal only); see the module docstring.
  """
  from jaxnas.ntk.empirical import network_ntk
  del key
  ev = net.replace(bn="running", reduction_bn=None)
  diag = network_ntk(ev, variables, batch.x, trace_outputs=True, diagonal=True, vmap_axes=0,
                     sample_chunk=_chunk(batch.x.shape[0]))
  return jnp.sum(diag)
