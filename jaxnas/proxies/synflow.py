"""SynFlow (iterative synaptic flow) as a zero-cost proxy (Tanaka et al. 2020; Abdelfattah 2021).

References: H. Tanaka, D. Kunin, D. L. K. Yamins, S. Ganguli, "Pruning neural networks without any
data by iteratively conserving synaptic flow", NeurIPS 2020; Abdelfattah et al., "Zero-Cost Proxies
for Lightweight NAS", ICLR 2021 (SamsungLabs/zero-cost-nas, reused by NASLib); methods-spec §1.1
(the zero-cost-nas network variant), §7.1, §8.2 (float64).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import _common
from jaxnas.proxies.registry import register

#: The zero-cost-nas NB201 network with ``bn=False``: no BN in the stem, cells and head, BN kept in
#: the reduction blocks, cell convs with a bias (bias = not affine, affine=False).
NO_BN = dict(bn="none", reduction_bn="batch", cell_bn_affine=False, cell_conv_bias=True)
#: The same network with every BN kept (``synflow_bn``), train mode.
WITH_BN = dict(bn="batch", reduction_bn="batch", cell_bn_affine=False, cell_conv_bias=True)


def synflow_score(output_fn, params, masks):
  """``sum over masked entries of |W * dR/dW|`` with ``R = sum(output_fn(params))``.

  Args:
    output_fn: ``output_fn(params) -> array`` (the network on its input).
    params: parameter tree (already made non-negative by the caller for SynFlow).
    masks: elementwise-broadcastable 0/1 masks selecting the weights that count.
  """
  grads = jax.grad(lambda p: jnp.sum(output_fn(p)))(params)
  return _common.masked_sum(jax.tree_util.tree_map(lambda w, g: jnp.abs(w * g), params, grads),
                            masks)


def variant(net, overrides):
  """``net`` with the module fields in ``overrides`` that its module has (others ignored)."""
  fields = net.module.__dataclass_fields__
  return net.replace(**{k: v for k, v in overrides.items() if k in fields})


def _require_x64(name):
  if jax.dtypes.canonicalize_dtype(jnp.float64) != jnp.float64:
    raise JaxnasInputError(
        f"proxy {name!r} needs 64-bit floats (its values overflow float32): run it under "
        "jaxnas._compat.enable_x64() (jaxnas.engine does this for x64 proxies)")


def synflow_of(net, variables, x):
  """SynFlow of ``net`` with ``|variables|`` on input ``x``: ``sum_W |W * dR/dW|``.

  Every variable (parameters and running statistics) is replaced by its absolute value and cast
  to ``x.dtype``; ``R`` is the sum of the outputs; ``W`` runs over the conv and dense kernels the
  architecture uses.
  """
  variables = jax.tree_util.tree_map(lambda v: jnp.abs(v).astype(x.dtype), variables)
  params = variables["params"]
  return synflow_score(lambda p: _common.apply(net, variables, x, p), params,
                       _common.elementwise_masks(net, params))


def _synflow(name, net, batch, key, overrides):
  _require_x64(name)
  snet = variant(net, overrides)
  shape = batch.x.shape[1:] if batch is not None and batch.x is not None else (32, 32, 3)
  x = jnp.ones((1,) + tuple(shape), jnp.float64)
  return synflow_of(snet, snet.init(key, x), x)


@register("synflow", needs_data=False, x64=True, needs_variables=False)
def synflow(net, variables, batch, key):
  """SynFlow ``sum_W |W * dR/dW|``, ``R = sum f(1; |theta|)``, on the zero-cost-nas BN-free net.

  Steps (the reference's ``synflow`` with ``bn=False``):

  1. the network is rebuilt as the zero-cost-nas variant (:data:`NO_BN`: no BN in stem, cells and
     head; the reduction blocks keep theirs; cell convs have a bias) and initialised from ``key``
     with PyTorch's default initialiser (the caller's ``variables`` are not used);
  2. every variable is replaced by its absolute value and the network runs in **float64**: the
     score is a sum of products of up to ~40 layers of weights: at full size (C=16, N=5) it ranged
     from 2e3 to 7e46 over 100 NB201 architectures, beyond float32's 3.4e38 (``x64=True``; raises
     :class:`JaxnasInputError` otherwise);
  3. the input is one all-ones image ``(1, H, W, 3)`` (H, W from ``batch.x``, whose values are not
     used; 32 x 32 without a batch); the reduction-block BNs are in train mode on this batch of 1, so they normalise over
     spatial positions only, as PyTorch does;
  4. ``R`` = sum of the logits; the score sums ``|W * dR/dW|`` over the conv and dense kernels
     the architecture uses (unused ops have zero gradient and are masked besides).

  Module fields that the space's network lacks are skipped (the overrides are NB201's names).

  References: Tanaka et al., "Pruning neural networks without any data by iteratively conserving
  synaptic flow", NeurIPS 2020; Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS",
  ICLR 2021.
  """
  del variables
  return _synflow("synflow", net, batch, key, NO_BN)


@register("synflow_bn", needs_data=False, x64=True, needs_variables=False)
def synflow_bn(net, variables, batch, key):
  """SynFlow with every BN kept (train mode, batch of 1): ``sum_W |W * dR/dW|``, ``R = sum f(1)``.

  As :func:`synflow` (float64, all-ones ``(1, H, W, 3)`` input, absolute values of all variables,
  re-initialised from ``key``) but on the zero-cost-nas network with BN (:data:`WITH_BN`: stem,
  cell (non-affine, conv bias) and head BNs present, all normalising with the statistics of the
  single input over spatial positions) — the reference's ``synflow_bn`` measure.

  References: Tanaka et al., NeurIPS 2020; Abdelfattah et al., "Zero-Cost Proxies for Lightweight
  NAS", ICLR 2021.
  """
  del variables
  return _synflow("synflow_bn", net, batch, key, WITH_BN)
