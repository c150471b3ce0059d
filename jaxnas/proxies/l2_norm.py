"""l2_norm: sum of the per-layer Frobenius norms of the weights (Abdelfattah et al. 2021, §7.1)."""

from __future__ import annotations

from jaxnas.proxies import _common
from jaxnas.proxies.grad_norm import frobenius
from jaxnas.proxies.registry import register
from jaxnas.spaces import params as P


@register("l2_norm", needs_data=False)
def l2_norm(net, variables, batch, key):
  """``sum_l ||W_l||_F`` over the conv and dense kernels the architecture uses (data-free).

  The shared NB201 build holds the parameters of every op, so the kernels of unused ops are masked
  out (``net.active``): the sum is over the layers of the discrete network only. Stacked cell leaves
  count one layer per (cell, edge). With PyTorch's default init, ``E||W_l||_F^2 = fan_out / 3``, so
  the score mostly counts (wide) layers. ``batch`` and ``key`` are unused.

  Reference: the ``l2_norm`` measure of SamsungLabs/zero-cost-nas (Abdelfattah et al., "Zero-Cost
  Proxies for Lightweight NAS", ICLR 2021), also computed by NASLib.
  """
  del batch, key
  params = variables["params"]
  return P.per_layer(frobenius, params, _common.layer_masks(net, params))
