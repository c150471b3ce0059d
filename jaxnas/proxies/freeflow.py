"""FreeFlow: operation sensitivity of a network with absolute weights on an all-ones input.

FreeNAS (arXiv 2106.11542 v1) and FreeDARTS (v2, "SynFlow on alpha"; methods-spec §2.1, §5) score
the operations of a supernet whose edges output ``sum_k alpha_k op_k(x)``:

  R(alpha) = sum_c f_c(1; |theta|, alpha),      S_{e,k} = |alpha_{e,k} * dR / d alpha_{e,k}|,

with every parameter replaced by its absolute value, BatchNorm in train mode on the single all-ones
image ``1`` (1, H, W, 3), float32, and ``alpha`` shared by all cells (so the gradient accumulates
over cells). Without BN and with positive ``theta`` and ``alpha`` every ReLU input is non-negative,
so ``R`` is a polynomial in ``alpha`` with non-negative coefficients, one term per input-output
path, and Euler's identity gives ``sum alpha dR/dalpha = sum_paths (#alpha factors) * path value``.

The ``freeflow`` proxy evaluates ``S`` at the one-hot ``alpha`` of a discrete NB201 architecture and
sums it over the chosen operations (where ``alpha = 1``): ``sum_e dR/d alpha_{e, arch_e}``.
:func:`sensitivity` is the supernet score the ``freedarts`` / ``freenas`` searches use (with
FreeDARTS' train-mode BN). On a *discrete* network that BN degenerates (see ``freeflow_bn``), so
``freeflow`` removes BN outside the reduction blocks (the zero-cost-nas synflow network) and runs
in float64; ``freeflow_bn`` keeps FreeDARTS' BN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnas.errors import JaxnasInputError
from jaxnas.proxies.registry import register


def abs_tree(tree):
  """Every leaf replaced by its absolute value (the state dict made positive)."""
  return jax.tree_util.tree_map(jnp.abs, tree)


def flow(module, params, alpha, x):
  """``R = sum of the logits`` of ``module`` with parameters ``|params|`` on ``x`` at ``alpha``."""
  return jnp.sum(module.apply({"params": abs_tree(params)}, x, alpha))


def sensitivity(module, params, alpha, x):
  """``S = |alpha * dR/dalpha|`` (shape of ``alpha``) and ``R``; BN mode is the module's."""
  r, g = jax.value_and_grad(lambda a: flow(module, params, a, x))(alpha)
  return jnp.abs(alpha * g), r


def ones_input(batch, resolution: int = 32):
  """The all-ones image ``(1, H, W, 3)``, H and W taken from ``batch.x`` when given."""
  if batch is not None and getattr(batch, "x", None) is not None:
    return jnp.ones((1,) + tuple(batch.x.shape[1:]), jnp.float32)
  return jnp.ones((1, resolution, resolution, 3), jnp.float32)


#: ``freeflow``: BN removed from the stem, cells and head (kept in the reduction blocks, as the
#: zero-cost-nas synflow network), float64 against overflow.
NO_BN = dict(bn="none", reduction_bn="batch", cell_bn_affine=False)
#: ``freeflow_bn``: FreeDARTS' supernet BN (train mode, cell BN without affine), float32.
WITH_BN = dict(bn="batch", reduction_bn=None, cell_bn_affine=False)


def _score(net, variables, batch, dtype):
  sp = net.space
  if sp.alpha_shape is None or tuple(sp.alpha_shape[:-1]) != tuple(sp.arch_shape):
    raise JaxnasInputError(
        f"proxy 'freeflow' needs a supernet whose architecture is one op index per edge "
        f"(alpha_shape = arch_shape + (ops,), as NB201's); the {sp.name!r} space has arch_shape "
        f"{sp.arch_shape} and alpha_shape {sp.alpha_shape}")
  alpha = jax.nn.one_hot(net.arch, net.space.alpha_shape[-1], dtype=dtype)
  params = jax.tree_util.tree_map(lambda p: p.astype(dtype), variables["params"])
  s, _ = sensitivity(net.module, params, alpha, ones_input(batch).astype(dtype))
  return jnp.sum(s * alpha)


@register("freeflow", needs_data=False, x64=True, config=NO_BN)
def freeflow(net, variables, batch, key):
  """FreeFlow (FreeNAS/FreeDARTS): sum over chosen ops of |alpha dR/dalpha|, |theta|, ones input.

  ``R = sum_c f_c(1; |theta|, alpha)`` with ``alpha = one_hot(arch)`` (6, 5) on the network without
  BN in stem, cells and head (reduction blocks keep train-mode BN, as zero-cost synflow), float64;
  the score is ``sum_e |alpha_{e,a_e} dR/dalpha_{e,a_e}|`` = the flow through the chosen ops, each
  path counted once per alpha factor on it (Euler). Higher is better. arXiv 2106.11542 (v1
  FreeFlow, v2 FreeDARTS SynFlow-on-alpha); methods-spec §2.1, §2.3, §5. NB201 only.
  """
  del key
  return _score(net, variables, batch, jnp.float64)


@register("freeflow_bn", needs_data=False, config=WITH_BN)
def freeflow_bn(net, variables, batch, key):
  """FreeFlow with FreeDARTS' train-mode BN (batch of one all-ones image), float32.

  As ``freeflow`` but on the network FreeDARTS scores (cell BN without affine parameters, batch
  statistics of the single image). Caution: on a discrete cell of 1x1 convolutions and skips the
  image is spatially constant apart from border effects, BN divides by a tiny spatial std and the
  score explodes (up to ~1e7); the FreeDARTS supernet mixes 3x3 ops into every edge and is not
  affected. arXiv 2106.11542 v2; methods-spec §2.1.
  """
  del key
  return _score(net, variables, batch, jnp.float32)
