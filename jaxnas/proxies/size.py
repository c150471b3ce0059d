"""Model-size proxies: parameter count and FLOPs of the discrete network.

Both are exact functions of the architecture (no data, no weights); they are the baselines every
zero-cost paper compares against (ZiCo Table 1: #params rho 0.75, FLOPs 0.73 on NB201 CIFAR-10).
"""

from jaxnas.proxies.registry import register


@register("params", needs_data=False, needs_variables=False)
def params(net, variables, batch, key):
  """Number of parameters of the discrete network, BN included, in millions.

  The space's ``count_params`` (NB201, NB101, DARTS: their benchmarks' conventions)."""
  return net.space.count_params(net.arch, **net.config()) / 1e6


@register("flops", needs_data=False, needs_variables=False)
def flops(net, variables, batch, key):
  """FLOPs per image of the discrete network, in millions.

  The space's ``count_flops`` (NB201: MACs + elementwise, its benchmark's convention).

  Uses the input resolution of ``batch.x`` when given.
  """
  res = batch.x.shape[1] if batch is not None and batch.x is not None else 32
  return net.space.count_flops(net.arch, resolution=res, **net.config()) / 1e6
