"""ZiCo: inverse coefficient of variation of the gradients (Li, Jia, Xie, Marculescu, ICLR 2023).

Paper Eq. 15, as computed by the reference code (SLDGroup/ZiCo ``compute_zico.py``,
methods-spec §7.4)::

    ZiCo = sum_{layers l}  log( sum_{w in theta_l, std_w > 0}  mean_i |g_i,w| / std_i(g_i,w) )

where ``g_i = dL_CE(X_i, y_i)/dtheta`` is the gradient on the i-th of ``N = 2`` batches (true
labels, train-mode BN, default initialisation), ``std`` is the population standard deviation
(ddof 0) of the *signed* gradient over the N batches and ``mean |g|`` the mean of its absolute
value. Elements with zero std are skipped, and so are layers whose inner sum is 0. Layers: every
conv and dense weight (``params.WEIGHTS``) of the operations the architecture uses. Higher is
better.

The two batches are the two halves of the given minibatch (``[0, B//2)`` and ``[B//2, B)``, as
NASLib's ``zico`` with ``split_data=2``). The registered minibatch is 256 images, i.e. the
paper's two batches of 128 (``BATCH_SIZE``). Each half's gradient
is computed from scratch, as in the original code (``zero_grad`` per batch); some ports to the
zero-cost-nas ``measures/`` framework do not reset the gradients between the halves, so their second
sample is ``g_1 + g_2``: we do not copy that.

With N = 2 every ratio is ``(|g_1| + |g_2|) / |g_1 - g_2| >= 1``, so every counted layer adds
``log(...) >= 0``; a network with no gradient anywhere (a cell of ``none`` edges) scores 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnas.data import Batch
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import _common
from jaxnas.proxies.registry import register
from jaxnas.spaces import params as P

#: Number of batches the statistics are taken over (the given minibatch is split into them).
NUM_SPLITS = 2


def split_gradients(net, variables, batch, num_splits: int = NUM_SPLITS):
  """Parameter gradients of the CE loss on each of ``num_splits`` consecutive slices of the batch.

  Slice ``s`` is ``[s*B//n, (s+1)*B//n)`` (the reference's split). Returns a tree whose leaves have
  a leading axis of size ``num_splits``.
  """
  b = batch.x.shape[0]
  if b < num_splits:
    raise JaxnasInputError(f"zico needs a batch of at least {num_splits} images (it splits the "
                           f"batch into {num_splits} parts), got {b}")
  grad_fn = jax.grad(lambda p, part: _common.loss(net, variables, part, p))
  if b % num_splits == 0:  # equal parts: one vmapped gradient (each part keeps its own BN stats)
    parts = jax.tree_util.tree_map(lambda a: a.reshape((num_splits, b // num_splits) + a.shape[1:]),
                                   Batch(batch.x, batch.y))
    return jax.vmap(grad_fn, in_axes=(None, 0))(variables["params"], parts)
  grads = []
  for s in range(num_splits):
    lo, hi = s * b // num_splits, (s + 1) * b // num_splits
    grads.append(grad_fn(variables["params"], Batch(batch.x[lo:hi], batch.y[lo:hi])))
  return jax.tree_util.tree_map(lambda *g: jnp.stack(g), *grads)


def score_from_gradients(grads, layer_masks):
  """ZiCo from stacked gradients (leading axis = batches) and per-layer 0/1 masks.

  ``sum over masked layers with a positive inner sum of log(sum_{std>0} mean|g| / std)``.
  """
  def ratio(g):
    std = jnp.std(g, axis=0)
    mean_abs = jnp.mean(jnp.abs(g), axis=0)
    return jnp.where(std > 0, mean_abs / jnp.where(std > 0, std, 1.0), 0.0)

  def layer_log(r, axes):
    s = jnp.sum(r, axis=axes)
    return jnp.where(s > 0, jnp.log(jnp.where(s > 0, s, 1.0)), 0.0)

  ratios = jax.tree_util.tree_map(ratio, grads)
  return P.per_layer(layer_log, ratios, layer_masks)


#: Images the engine draws for ``zico``: two batches of 128 (Li et al. 2023, Sec. 4).
BATCH_SIZE = 2 * 128


@register("zico", needs_labels=True, batch_size=BATCH_SIZE, cpu_eager=True)
def zico(net, variables, batch, key):
  """ZiCo: sum over layers of log(sum_w mean_i|g_w| / std_i(g_w)) over 2 batches (Li et al. 2023).

  The minibatch is split into two halves; ``g`` = CE gradient of each half w.r.t. the conv and
  dense weights of the used operations (train-mode BN); population std of the signed gradient;
  zero-std elements and zero layers skipped (SLDGroup/ZiCo ``compute_zico``).
  """
  del key
  grads = split_gradients(net, variables, batch)
  masks = _common.layer_masks(net, variables["params"], P.WEIGHTS)
  return score_from_gradients(grads, masks)
