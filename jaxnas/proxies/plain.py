"""plain: the signed first-order saliency ``sum W * dL/dW`` (Abdelfattah et al. 2021, §7.1)."""

from __future__ import annotations

from jaxnas.proxies import _common
from jaxnas.proxies.registry import register
from jaxnas.proxies.snip import saliency


@register("plain", needs_labels=True, batch_size=64, cpu_eager=True, shares=("loss_grad",))
def plain(net, variables, batch, key):
  """Signed saliency ``sum_W W * dL_CE/dW`` over the conv and dense kernels used.

  It is the derivative of the loss along a uniform rescaling of the weights,
  ``d/dt L((1 + t) W)`` at ``t = 0``; SNIP is the same sum of absolute values, so
  ``|plain| <= snip``. Setup as :func:`jaxnas.proxies.snip.snip` (mean cross-entropy on the
  labelled minibatch of 64, PyTorch-default init, the network's BN mode). ``key`` is unused. The
  reference's sign is kept: higher is treated as better, although on NB201 its rank correlation
  with accuracy is negative (NASLib: -0.247 on the 500-architecture subset).

  Reference: Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021 (the ``plain``
  measure of SamsungLabs/zero-cost-nas).
  """
  del key
  params = variables["params"]
  return saliency(params, _common.loss_grad(net, variables, batch),
                  _common.elementwise_masks(net, params), signed=True)
