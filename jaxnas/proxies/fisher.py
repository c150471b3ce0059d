"""Fisher channel saliency as a zero-cost proxy (Theis et al. 2018; Turner et al. 2020).

References: L. Theis, I. Korshunova, A. Tejani, F. Huszar, "Faster gaze prediction with dense
networks and Fisher pruning", 2018; J. Turner, E. J. Crowley, M. O'Boyle, A. Storkey, G. Gray,
"BlockSwap: Fisher-guided Block Substitution for Network Compression on a Budget", ICLR 2020;
Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021 (SamsungLabs/zero-cost-nas);
methods-spec §7.1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxnas.proxies import _common
from jaxnas.proxies.registry import register


def fisher_from_gate_grads(gate_grads, params, masks):
  """``sum_l sum_c m_l * F_{l,c} * n_l`` from the gradients of per-channel output gates.

  ``F_{l,c} = 1/2 * mean_n (dL/dgate_{l}[n, c])^2`` where ``dL/dgate[n, c] = sum_spatial a * dL/da``
  for the output activation ``a`` of layer ``l``, and ``n_l`` is the number of weights per output
  channel (``k*k*C_in`` for a conv, ``in`` for a dense layer): the reference broadcasts ``F_c`` to
  every weight of channel ``c`` and sums.

  Args:
    gate_grads: the ``gates`` collection's gradient: leaves ``<layer>/gate`` of shape
      ``stack + (B, C_out)`` (stacked layers lead, as their kernels).
    params: the parameter tree; ``<layer>/kernel`` gives ``n_l``.
    masks: per-layer 0/1 masks over ``params`` (scalars or the stacked shape), e.g.
      :func:`jaxnas.proxies._common.layer_masks`.

  Returns:
    Scalar.
  """
  flat_p = traverse_util.flatten_dict(params)
  flat_m = traverse_util.flatten_dict(masks)
  total = jnp.zeros((), jnp.result_type(*jax.tree_util.tree_leaves(gate_grads)))
  for path, g in traverse_util.flatten_dict(gate_grads).items():
    kpath = path[:-1] + ("kernel",)
    if path[-1] != "gate" or kpath not in flat_p:
      raise ValueError(f"gate {'/'.join(path)} has no kernel beside it")
    total = total + _layer_fisher(g, flat_p[kpath].shape, flat_m[kpath])
  return total


def fisher_from_layer_gates(gate_grads, kernels):
  """:func:`fisher_from_gate_grads` for gates that each belong to one real layer whose kernel is
  given beside them: ``kernels`` has ``gate_grads``' structure, each leaf that layer's kernel (or
  anything with its ``shape``: ``n_l`` is the product of all but its last dimension). Every layer
  counts (no masks, no stacking): NB101's unrolled build (``NB101Model.gates``), whose layers are
  slices of stacked full-width variables."""
  flat_k = traverse_util.flatten_dict(kernels)
  total = jnp.zeros((), jnp.result_type(*jax.tree_util.tree_leaves(gate_grads)))
  for path, g in traverse_util.flatten_dict(gate_grads).items():
    if path not in flat_k:
      raise ValueError(f"gate {'/'.join(path)} has no kernel")
    total = total + _layer_fisher(g, flat_k[path].shape, 1.0)
  return total


def _layer_fisher(g, kernel_shape, mask):
  """``sum_c m * F_c * n`` of one (possibly stacked) layer: ``g`` stack + (B, C_out)."""
  stack = g.shape[:-2]
  per_channel = 0.5 * jnp.mean(jnp.square(g), axis=-2)              # stack + (C_out,)
  fan = int(np.prod(kernel_shape[len(stack):-1]))                    # weights per out channel
  m = jnp.asarray(mask, per_channel.dtype)
  m = jnp.reshape(m, m.shape + (1,) * (per_channel.ndim - m.ndim))
  return fan * jnp.sum(per_channel * m)


def gate_gradients(net, variables, batch, with_kernels: bool = False):
  """``dL_CE/dgate`` for ones gates on every conv/dense output (``net`` rebuilt with gates).

  ``with_kernels=True`` returns ``(grads, kernels)``: ``kernels`` the network's sown
  ``intermediates/gate_kernels`` (shapes only; see :func:`fisher_from_layer_gates`) or None when
  it sows none (its gates lie beside kernels in ``params``)."""
  gnet = net.replace(gates=True)
  shapes = jax.eval_shape(lambda: gnet.init(jax.random.key(0), batch.x, mutable=True))
  gates = jax.tree_util.tree_map(lambda s: jnp.ones(s.shape, s.dtype), shapes["gates"])

  def loss_of_gates(gates):
    logits = gnet.apply({**variables, "gates": gates}, batch.x)
    return _common.cross_entropy(logits, batch.y)

  grads = jax.grad(loss_of_gates)(gates)
  if not with_kernels:
    return grads
  return grads, shapes.get("intermediates", {}).get("gate_kernels")


@register("fisher", needs_labels=True, batch_size=64, cpu_eager=True, requires=("gates",))
def fisher(net, variables, batch, key):
  """Fisher saliency ``sum_l sum_c F_{l,c} * n_l``, ``F_{l,c} = 1/2 mean_n (sum_s a dL/da)^2``.

  ``a_{n,c,s}`` is the output of conv/dense layer ``l`` (after its bias, before BN) for image ``n``,
  channel ``c``, spatial position ``s``; ``L`` the mean cross-entropy on the labelled minibatch (64
  in the reference), PyTorch-default init, the network's BN mode (train-mode batch statistics by
  default). ``n_l`` = weights per output channel (the reference's quirk of broadcasting the
  per-channel value onto the weight tensor before summing, copied). ``sum_s a dL/da`` is read off
  as ``dL/dgate`` of a ones gate on the layer output (``NB201Net(gates=True)``). Every conv and
  dense layer the architecture uses contributes (stem, cells, reductions incl. the shortcut,
  classifier); unused ops have zero gate gradient and are masked besides; the DARTS supernet
  likewise (``DartsSupernet.gates``: every conv of the cells' preprocessing and kept ops, the
  stem and the classifier, in the scanned and the unrolled build). On NB101 the gates
  exist only on the unrolled network (``mode='eager'``): one per conv of the discrete network
  (stem, projections, vertex convs) at the vertex's real width, and the classifier, with
  ``n_l`` of the real layer (:func:`fisher_from_layer_gates`). ``key`` is unused.

  References: Theis et al. 2018 (Fisher pruning); Turner et al., "BlockSwap", ICLR 2020;
  Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021.
  """
  del key
  grads, kernels = gate_gradients(net, variables, batch, with_kernels=True)
  if kernels is not None:
    return fisher_from_layer_gates(grads, kernels)
  return fisher_from_gate_grads(grads, variables["params"],
                                _common.layer_masks(net, variables["params"]))
