"""HNAS' NTK metrics: the trace norm M_trace and the condition number of the same kernel.

From HNAS (Shu, Dai, Wu, Low, "Unifying and Boosting Gradient-Based Training-Free Neural
Architecture Search", NeurIPS 2022; code ``measures/ntk_trace.py``, methods-spec §4.1, §8.3):

    g_i   = per-sample gradient of the true-class logit f_{y_i}(x_i)
    Theta = G G^T  (B x B),  G = [g_1; ...; g_B]
    hnas_trace = M_trace = sqrt(tr(Theta) / B) = sqrt(B^-1 sum_i ||g_i||^2)
    hnas_cond  = kappa = lambda_max(Theta) / lambda_min(Theta)   (NaN -> 1e5; lower is better)

over the conv and dense weights *and biases* (BN parameters excluded, ``WEIGHTS_AND_BIASES``), with
train-mode BN on one batch of 64 at PyTorch's default initialisation. The per-sample gradients are
autograd-hacks' (HNAS' code): sample ``i``'s share ``d S / d theta_i`` of the batch gradient of
``S = sum_j f_{y_j}(x_j)``, every sample holding its own copy of the parameters while BN statistics
are taken over the whole batch (``jaxnas.ntk.per_sample``, semantics ``'shares'``).

Deviation: the references map only NaN to 1e5; a kernel with ``lambda_min <= 0`` (rank deficient up
to rounding, e.g. cells whose output ignores the input) also gets 1e5 here instead of a ratio whose
sign and size are rounding noise.
"""

import jax
import jax.numpy as jnp

from jaxnas.proxies import joint
from jaxnas.proxies.registry import register
from jaxnas.spaces import params as P


def hnas_kernel(net, variables, batch):
  """HNAS' ``Theta = G G^T`` ``(B, B)`` from the per-sample shares of the true-class logits:
  computed once per joint pass of ``hnas_trace`` and ``hnas_cond`` (``shares=('hnas_kernel',)``;
  the per-sample gradients are nearly all of either proxy's cost), over the network's compact
  parameters (:meth:`jaxnas.spaces.Network.compact`: the same kernel; NB101 eagerly: 4.3M
  entries on average instead of 57M), in groups of parameters when all of ``G`` would not fit
  (:func:`jaxnas.ntk.per_sample.network_gram`)."""
  from jaxnas.ntk.per_sample import network_gram

  def compute():
    cot = jax.nn.one_hot(batch.y, net.module.num_classes, dtype=batch.x.dtype)
    cnet, cvars = net.compact(variables)
    sel = P.select(cvars["params"], P.WEIGHTS_AND_BIASES)
    return network_gram(cnet, cvars, batch.x, cot, "shares", select=sel)
  return joint.shared("hnas_kernel", (net, variables, batch), compute)


@register("hnas_trace", needs_labels=True, batch_size=64, shares=("hnas_kernel",))
def hnas_trace(net, variables, batch, key):
  """HNAS M_trace = sqrt(tr(G G^T) / B), G the per-sample true-class-logit gradients (shares).

  Shu et al., NeurIPS 2022 (HNAS ``ntk_trace``): conv+dense weights and biases, train-mode BN.
  """
  del key
  theta = hnas_kernel(net, variables, batch)
  return jnp.sqrt(jnp.trace(theta) / theta.shape[0])


@register("hnas_cond", needs_labels=True, batch_size=64, higher_is_better=False,
          shares=("hnas_kernel",))
def hnas_cond(net, variables, batch, key):
  """HNAS condition number lambda_max/lambda_min of G G^T (NaN or lambda_min <= 0 -> 1e5).

  Shu et al., NeurIPS 2022 (HNAS ``condnum``), same kernel as ``hnas_trace``; lower is better.
  """
  from jaxnas.ntk.spectrum import condition_number
  del key
  return condition_number(hnas_kernel(net, variables, batch))
