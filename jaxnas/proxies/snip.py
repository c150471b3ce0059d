"""SNIP connection sensitivity as a zero-cost proxy (Lee et al. 2019; Abdelfattah et al. 2021).

References: N. Lee, T. Ajanthan, P. H. S. Torr, "SNIP: Single-shot Network Pruning based on
Connection Sensitivity", ICLR 2019; Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS",
ICLR 2021 (SamsungLabs/zero-cost-nas); methods-spec §7.1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnas.proxies import _common
from jaxnas.proxies.registry import register


def saliency(params, grads, masks, signed: bool = False):
  """``sum over masked entries of |W * dL/dW|`` (or the signed ``W * dL/dW``).

  Args:
    params: parameter tree ``W``.
    grads: the loss gradient ``dL/dW`` (same tree).
    masks: elementwise-broadcastable 0/1 masks over the tree (which entries count).
    signed: sum ``W * g`` instead of ``|W * g|`` (the ``plain`` proxy).

  Returns:
    Scalar saliency sum.
  """
  f = (lambda w, g: w * g) if signed else (lambda w, g: jnp.abs(w * g))
  return _common.masked_sum(jax.tree_util.tree_map(f, params, grads), masks)


@register("snip", needs_labels=True, batch_size=64, cpu_eager=True, shares=("loss_grad",))
def snip(net, variables, batch, key):
  """SNIP saliency summed over weights: ``sum_W |W * dL_CE/dW|`` (Lee et al. 2019).

  Equals ``sum |dL/dc|`` for a multiplicative mask ``c = 1`` on every weight, which is how the
  reference computes it (``L(W * c)``, weights frozen). ``W`` runs over the conv and dense kernels
  the architecture uses; ``L_CE`` is the mean cross-entropy on the labelled minibatch (64 images in
  the reference), PyTorch-default initialisation, the network's BN mode (train-mode batch
  statistics by default). ``key`` is unused.

  References: Lee et al., "SNIP", ICLR 2019; Abdelfattah et al., "Zero-Cost Proxies for
  Lightweight NAS", ICLR 2021.
  """
  del key
  params = variables["params"]
  return saliency(params, _common.loss_grad(net, variables, batch),
                  _common.elementwise_masks(net, params))
