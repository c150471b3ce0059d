"""grad_norm: sum over layers of the Frobenius norm of the loss gradient (Abdelfattah et al. 2021).

Reference: M. S. Abdelfattah, A. Mehrotra, L. Dudziak, N. D. Lane, "Zero-Cost Proxies for
Lightweight NAS", ICLR 2021 (SamsungLabs/zero-cost-nas, reused by NASLib); methods-spec §7.1.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxnas.proxies import _common
from jaxnas.proxies.registry import register
from jaxnas.spaces import params as P


def frobenius(x, axes):
  """``||x||_F`` over ``axes`` (the layer axes), keeping stacked-layer axes."""
  return jnp.sqrt(jnp.sum(jnp.square(x), axes))


def grad_norm_score(grads, masks):
  """``sum_l m_l ||G_l||_F`` for per-layer masks ``m_l`` (stacked leaves are many layers).

  Args:
    grads: gradient tree (the parameter tree's structure).
    masks: per-layer 0/1 masks over the same tree (scalars, or the stacked axes' shape), e.g.
      :func:`jaxnas.proxies._common.layer_masks`.

  Returns:
    Scalar: the sum of per-layer norms, not the norm of the whole gradient.
  """
  return P.per_layer(frobenius, grads, masks)


@register("grad_norm", needs_labels=True, batch_size=64, cpu_eager=True,
          shares=("loss_grad",))
def grad_norm(net, variables, batch, key):
  """Sum over layers of the gradient norm: ``sum_l ||dL_CE/dW_l||_F`` (Abdelfattah et al. 2021).

  ``W_l`` runs over the conv and dense *kernels* the architecture uses (``params.WEIGHTS``; biases
  and BN parameters excluded, as the reference's ``Conv2d``/``Linear`` ``.weight``), ``L_CE`` is the
  mean softmax cross-entropy on the labelled minibatch (64 images in the reference), with the
  caller's PyTorch-default initialisation and the network's BN mode (train-mode batch statistics by
  default). Each edge of each NB201 cell is its own layer (stacked leaves are split by
  ``params.per_layer``), so this is a sum of norms, not a global norm. Parameters of ops the
  architecture does not use get zero gradient and are masked out besides. ``key`` is unused.

  Reference: Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021.
  """
  del key
  params = variables["params"]
  grads = _common.loss_grad(net, variables, batch)
  return grad_norm_score(grads, _common.layer_masks(net, params))
