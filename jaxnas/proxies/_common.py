"""Small pieces shared by proxies: losses, parameter access, per-layer masks.

Proxies import from here rather than re-deriving these; a proxy that needs something specific
keeps it in its own file.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxnas.proxies import joint
from jaxnas.spaces import params as P


def cross_entropy(logits, labels):
  """Mean softmax cross-entropy over the batch (PyTorch ``F.cross_entropy``)."""
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def with_params(variables, params):
  """``variables`` with its ``params`` collection replaced."""
  return {**variables, "params": params}


def apply(net, variables, x, params=None, **kwargs):
  """Logits of ``net`` on ``x``, optionally with substituted ``params``."""
  v = variables if params is None else with_params(variables, params)
  return net.apply(v, x, **kwargs)


def loss(net, variables, batch, params=None):
  """Cross-entropy of the network on the labelled minibatch."""
  return cross_entropy(apply(net, variables, batch.x, params), batch.y)


def loss_grad(net, variables, batch):
  """``dL_CE/dW`` for every parameter (the tree of ``variables['params']``): computed once per
  joint pass of the proxies that read it (registered ``shares=('loss_grad',)``)."""
  def compute():
    return jax.grad(lambda p: loss(net, variables, batch, p))(variables["params"])
  return joint.shared("loss_grad", (net, variables, batch), compute)


def layer_masks(net, params, kinds=P.WEIGHTS):
  """Per-layer 0/1 masks: 1 for layers of the given roles that the architecture uses.

  Use with :func:`jaxnas.spaces.params.per_layer` (per-layer masks) or broadcast them onto the
  leaves with :func:`jaxnas.spaces.params.broadcast_to_leaves` (elementwise use).
  """
  chosen = P.select(params, kinds)
  active = net.active(params)
  return jax.tree_util.tree_map(lambda c, a: a * float(c), chosen, active)


def elementwise_masks(net, params, kinds=P.WEIGHTS):
  """:func:`layer_masks` broadcast onto the parameter leaves."""
  return P.broadcast_to_leaves(layer_masks(net, params, kinds), params)


def masked_sum(tree, masks):
  """``sum over leaves of sum(leaf * mask)`` (masks broadcast against leaves)."""
  return P.tree_sum(jax.tree_util.tree_map(lambda x, m: jnp.sum(x * m), tree, masks))
