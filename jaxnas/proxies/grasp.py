"""GraSP (gradient signal preservation) as a zero-cost proxy (Wang et al. 2020; Abdelfattah 2021).

References: C. Wang, G. Zhang, R. Grosse, "Picking Winning Tickets Before Training by Preserving
Gradient Flow", ICLR 2020; Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021
(SamsungLabs/zero-cost-nas); methods-spec §7.1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnas.errors import unknown
from jaxnas.proxies import _common
from jaxnas.proxies.registry import register
from jaxnas.spaces import params as P


def hessian_gradient_product(loss_fn, params, masks, method: str = "forward"):
  """``(H g, g)`` with ``g = m * dL/dW`` held constant and ``H`` the Hessian of ``loss_fn``.

  Entries outside ``masks`` (elementwise 0/1) are excluded from ``g``, so ``H g = H[:, S] g_S`` for
  the selected set ``S``.

  Args:
    loss_fn: ``loss_fn(params) -> scalar``.
    params: parameter tree.
    masks: elementwise-broadcastable 0/1 masks over the tree.
    method: ``'forward'`` (default): forward-over-reverse, ``jax.linearize`` of ``dL/dW`` applied
      to ``g``: one gradient pass whose every intermediate is kept for the tangent pass;
      ``'jvp'``: the gradient, then ``jax.jvp`` of ``dL/dW`` along ``g`` (a second gradient pass
      carrying tangents): one more pass, but only the tangent pass's own residuals are held at
      once, far less memory on big networks (experiments/bench_grasp_memory.py);
      ``'reverse'``: double backpropagation, the gradient of ``<dL/dW, stop_gradient(g)>`` (the
      reference's ``autograd.grad(..., create_graph=True)``). All are ``H g`` exactly (``H`` is
      symmetric); the forward form compiles to about half the program (NB201: 19k vs 33k HLO lines).
  """
  grad = jax.grad(loss_fn)
  mul = lambda a, m: a * m
  if method == "forward":
    g, lin = jax.linearize(grad, params)
    g = jax.tree_util.tree_map(mul, g, masks)
    return lin(g), g
  if method == "jvp":
    g = jax.tree_util.tree_map(mul, grad(params), masks)
    return jax.jvp(grad, (params,), (g,))[1], g
  if method == "reverse":
    g = jax.lax.stop_gradient(jax.tree_util.tree_map(mul, grad(params), masks))

    def inner(p):
      return P.tree_sum(jax.tree_util.tree_map(lambda a, b: jnp.sum(a * b), grad(p), g))

    return jax.grad(inner)(params), g
  raise unknown("Hessian-vector method", method, ("forward", "jvp", "reverse"))


#: The Hessian-vector route the ``grasp`` proxy takes (:func:`hessian_gradient_product`): ``'jvp'``,
#: which on the DARTS network at the reference's size (C=32, 8 cells, batch 64) fits where
#: ``'forward'`` needs over 24 GiB; at C=16, 5 cells, batch 32 it peaks at 2.7 GiB against 4.9
#: (``'reverse'``: 4.9), and on NB201 at 3.0 against 4.0 GiB for 5-16 % more time
#: (experiments/bench_grasp_memory.py).
METHOD = "jvp"


def grasp_score(loss_fn, params, masks, method: str = "forward"):
  """``-sum_{W in S} W * (H g)_W`` with ``g = dL/dW`` on the selected set ``S`` (``masks``)."""
  hg, _ = hessian_gradient_product(loss_fn, params, masks, method)
  return -_common.masked_sum(jax.tree_util.tree_map(lambda w, h: w * h, params, hg), masks)


@register("grasp", needs_labels=True, batch_size=64, cpu_eager=True)
def grasp(net, variables, batch, key):
  """GraSP score ``-sum_W W * (H g)``, ``g = dL_CE/dW`` held constant, ``H = d^2 L_CE / dW^2``.

  ``W`` runs over the conv and dense kernels the architecture uses; ``L_CE`` is the mean
  cross-entropy of the logits divided by the temperature ``T = 1`` on the labelled minibatch (64
  in the reference); PyTorch-default init; the network's BN mode (train-mode batch statistics by
  default). ``g`` is restricted to the weights (the reference differentiates with respect to the
  conv/linear weights only); ``H g`` is computed forward-over-reverse (the JVP of the gradient
  along ``g``, route :data:`METHOD`), which equals the reference's double backpropagation of
  ``<dL/dW, g>`` because the Hessian is symmetric (:func:`hessian_gradient_product`).

  Sign: the reference returns ``-W * Hg`` per weight and sums it; GraSP (Wang et al.) prunes the
  weights with the *largest* ``-W * Hg``, but as an architecture score the reference (and NASLib's
  published correlations, e.g. rho = 0.565 on the 500-architecture NB201 subset, 0.514 |rho| over
  all of NB201) uses this sum as it is, larger = better. We return the same quantity.

  References: Wang et al., "Picking Winning Tickets Before Training by Preserving Gradient Flow",
  ICLR 2020; Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021.
  """
  del key
  params = variables["params"]
  return grasp_score(lambda p: _common.loss(net, variables, batch, p), params,
                     _common.elementwise_masks(net, params), METHOD)
