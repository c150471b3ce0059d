"""Per-sample gradients, the library's own route to NTK rows (no neural-tangents).

For a batch ``X`` of ``B`` samples and per-sample cotangents ``c_i`` (``(B, K)``: a one-hot true
class, all ones for the logit sum, ...), the per-sample scalar is ``s_i = <c_i, f(X)_i>`` and its
"per-sample gradient" ``g_i`` has three meanings, which coincide when samples do not interact (no
BatchNorm, or BN with running statistics) and differ under batch-statistics BN (methods-spec §8.3):

* ``'rows'`` (TE-NAS, Chen et al. ICLR 2021): ``g_i = d s_i(X) / d theta``, the rows of the
  Jacobian of the *batched* map ``X -> (s_i)_i``: ``B`` reverse passes through the whole batch
  (``jax.jacrev``), each seeing the batch statistics move with theta.
* ``'shares'`` (HNAS, Shu et al. NeurIPS 2022, autograd-hacks): every sample gets its own copy
  ``theta_i`` of the selected parameters, the batch runs with BN statistics over all samples, and
  ``g_i = d S / d theta_i`` for ``S = sum_j s_j``: one reverse pass. These are sample ``i``'s shares
  of the batch gradient (``sum_i g_i = dS/dtheta``), not ``d s_i / d theta``.
  The copies being equal, the convolutions run the batch through one kernel and split only
  their kernel gradients per sample (:mod:`jaxnas.ntk._copies`, ``equal_copies=True``, 5x faster
  on CPU; equal to one copy per sample up to float32 rounding, to 2e-14 in float64).
* ``'independent'``: ``g_i = d s_i / d theta`` of the network run on ``x_i`` alone (``vmap`` of
  ``grad``); only meaningful when samples do not interact.

Gradients are returned as flat dicts ``path -> (B, *leaf.shape)`` over the selected parameters;
:func:`gram` gives ``G G^T`` (``B x B``), whose trace is NASI's Eq. 9 and HNAS' ``B * M_trace^2``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable

import jax
import jax.numpy as jnp

from jaxnas.errors import JaxnasInputError, unknown
from jaxnas.ntk._copies import kernel_copies_equal
from jaxnas.ntk.empirical import is_coupled, merge_params, split_params
from jaxnas.spaces import ops

SEMANTICS = ("rows", "shares", "independent")
#: ``vmap`` axis name of the samples in the ``'shares'`` route.
SAMPLE_AXIS = "jaxnas_sample"
_PATCH_LOCK = threading.RLock()


@contextlib.contextmanager
def _batch_statistics_across(axis_name: str):
  """While tracing inside ``vmap(..., axis_name=axis_name)`` over samples, batch-mode BatchNorm
  takes its statistics over the mapped samples (``lax.pmean``) instead of the single sample each
  mapped call sees. This is how every sample can own a parameter copy while BN still couples them.

  It swaps ``jaxnas.spaces.ops.batch_norm`` for the duration of the trace (the NB201 network looks
  it up at call time); only running-statistics bookkeeping is not supported (no ``batch_stats``
  updates). To be replaced by an ``axis_name`` argument of ``ops.batch_norm`` when it has one.
  """
  original = ops.batch_norm

  def batch_norm(x, scale, bias, state, mode, eps=ops.BN_EPS):
    if mode != "batch":
      return original(x, scale, bias, state, mode, eps)
    axes = tuple(range(x.ndim - 1))
    mean = jax.lax.pmean(jnp.mean(x, axis=axes), axis_name)
    var = jax.lax.pmean(jnp.mean(jnp.square(x - mean), axis=axes), axis_name)
    y = (x - mean) * jax.lax.rsqrt(var + eps)
    if scale is not None:
      y = y * scale.astype(x.dtype) + bias.astype(x.dtype)
    return y, state

  with _PATCH_LOCK:
    ops.batch_norm = batch_norm
    try:
      yield
    finally:
      ops.batch_norm = original


def per_sample_grads(apply_fn: Callable, params, x, cotangents, semantics: str = "rows",
                     equal_copies: bool = True):
  """Per-sample gradients ``g_i`` of ``s_i = <cotangents_i, apply_fn(params, X)_i>``.

  Args:
    apply_fn: ``apply_fn(params, x) -> (B, K)``.
    params: the pytree to differentiate (e.g. a flat dict of selected leaves).
    x: the batch ``(B, ...)``.
    cotangents: ``(B, K)`` weights of the outputs in each sample's scalar.
    semantics: ``'rows'``, ``'shares'`` or ``'independent'`` (module docstring).
    equal_copies: ``'shares'`` only: convolve the batch with one kernel and split only the kernel
      gradients per sample (:mod:`jaxnas.ntk._copies`, ~5x faster on CPU); ``False`` runs every
      sample through its own copy (the definition; the test reference).

  Returns:
    pytree like ``params`` with a leading sample axis ``B`` on every leaf.
  """
  if semantics not in SEMANTICS:
    raise unknown("per-sample gradient semantics", semantics, SEMANTICS)
  b = x.shape[0]
  if cotangents.shape[0] != b:
    raise JaxnasInputError(f"cotangents have {cotangents.shape[0]} rows for a batch of {b}")

  if semantics == "rows":
    return jax.jacrev(lambda p: jnp.sum(apply_fn(p, x) * cotangents, axis=-1))(params)

  if semantics == "independent":
    def one(xi, ci):
      return jax.grad(lambda p: jnp.sum(apply_fn(p, xi[None])[0] * ci))(params)
    with ops.samples_vmapped(b):
      return jax.vmap(one)(x, cotangents)

  stacked = jax.tree_util.tree_map(lambda p: jnp.broadcast_to(p, (b,) + p.shape), params)

  def total(st):
    def one(p, xi, ci):
      return jnp.sum(apply_fn(p, xi[None])[0] * ci)
    with _batch_statistics_across(SAMPLE_AXIS):
      return jnp.sum(jax.vmap(one, axis_name=SAMPLE_AXIS)(st, x, cotangents))

  with ops.samples_vmapped(b):
    if not equal_copies:
      return jax.grad(total)(stacked)
    with kernel_copies_equal(b):   # around the transposition too: it batches the backward rules
      return jax.grad(total)(stacked)


def gram(grads):
  """``G G^T`` ``(B, B)`` of per-sample gradients (leading axis ``B`` on every leaf)."""
  leaves = jax.tree_util.tree_leaves(grads)
  b = leaves[0].shape[0]
  return sum(jnp.einsum("ip,jp->ij", g.reshape(b, -1), g.reshape(b, -1)) for g in leaves)


def sq_norms(grads):
  """``||g_i||^2`` ``(B,)``."""
  leaves = jax.tree_util.tree_leaves(grads)
  b = leaves[0].shape[0]
  return sum(jnp.sum(jnp.square(g.reshape(b, -1)), axis=1) for g in leaves)


def network_grads(net, variables, x, cotangents, semantics: str = "rows", select=None,
                  equal_copies: bool = True):
  """Per-sample gradients of a :class:`jaxnas.spaces.Network` over the selected parameters.

  Args:
    net: the bound network (its BN mode decides whether samples interact).
    variables: its Flax variables.
    x: NHWC batch ``(B, H, W, 3)``.
    cotangents: ``(B, K)`` (e.g. ``jax.nn.one_hot(y, K)`` for the true-class logit).
    semantics: ``'rows'`` / ``'shares'`` / ``'independent'``; ``'independent'`` on a network whose
      BN uses batch statistics raises :class:`JaxnasInputError` (a batch of one is another network).
    select: tree of bools over ``params`` (default all), e.g. ``params.select(p, WEIGHTS)``.

  Returns:
    flat dict ``path -> (B, *leaf.shape)``.
  """
  if semantics == "independent" and is_coupled(net):
    raise JaxnasInputError(
        f"semantics 'independent' runs each sample alone, but this network's BN (bn="
        f"{net.module.bn!r}) normalises with batch statistics; use 'rows' (TE-NAS) or 'shares' "
        "(HNAS), or bn='running'/'none'")
  chosen, rest = split_params(variables["params"], select)

  def apply_fn(p, xb):
    return net.apply({**variables, "params": merge_params(p, rest)}, xb)

  return per_sample_grads(apply_fn, chosen, x, cotangents, semantics, equal_copies)


#: Largest per-sample gradient block (samples x parameters, float32 bytes) :func:`network_gram`
#: forms at once. NB201 (64 x 1.7M: 0.4 GiB) and the DARTS supernet at C=32, 8 cells (1.6 GiB) take
#: one pass; NB101's 57M-entry shared layout (13.6 GiB at B = 64) takes 8, its compact parameters
#: (:meth:`jaxnas.spaces.Network.compact`, what HNAS differentiates) one for ~286 of the 300
#: benchmark cells (~315 passes for the 300, from their parameter counts).
GRAM_BYTES = 3 * 2**30


def leaf_groups(params, select, n_samples: int, max_bytes: int = GRAM_BYTES) -> list:
  """Selections (trees of bools like ``select``) whose selected leaves hold at most ``max_bytes``
  of per-sample gradients each (``n_samples`` rows; a larger single leaf is a group of its own),
  consecutive in tree order; together they select exactly what ``select`` does."""
  leaves, treedef = jax.tree_util.tree_flatten(params)
  chosen = jax.tree_util.tree_leaves(select)
  groups, current, used = [], [], 0
  for i, (leaf, keep) in enumerate(zip(leaves, chosen)):
    if not keep:
      continue
    size = n_samples * leaf.size * jnp.dtype(leaf.dtype).itemsize
    if current and used + size > max_bytes:
      groups.append(current)
      current, used = [], 0
    current.append(i)
    used += size
  if current:
    groups.append(current)
  return [jax.tree_util.tree_unflatten(treedef, [i in g for i in range(len(leaves))])
          for g in map(set, groups)]


def network_gram(net, variables, x, cotangents, semantics: str = "rows", select=None,
                 max_bytes: int = GRAM_BYTES):
  """``G G^T`` ``(B, B)`` of :func:`network_grads` without holding all of ``G``: the selected
  leaves are split into groups of at most ``max_bytes`` of per-sample gradients
  (:func:`leaf_groups`), and ``sum over groups of G_g G_g^T`` is taken with one gradient pass per
  group (exact: the Gram matrix is a sum over parameters). One group (one pass) when it fits."""
  params = variables["params"]
  if select is None:
    select = jax.tree_util.tree_map(lambda _: True, params)
  groups = leaf_groups(params, select, x.shape[0], max_bytes)
  if not groups:
    raise JaxnasInputError("the parameter selection is empty")
  return sum(gram(network_grads(net, variables, x, cotangents, semantics, select=g))
             for g in groups)


def jacobian(apply_fn: Callable, params, x, coupled: bool = True):
  """Per-sample Jacobians of all outputs: pytree like ``params`` with leading ``(B, K)`` axes.

  ``coupled=True``: rows of the Jacobian of the batched map (``jax.jacrev``, TE-NAS semantics);
  ``False``: each sample run alone (``vmap`` of ``jacrev``).
  """
  if coupled:
    return jax.jacrev(lambda p: apply_fn(p, x))(params)
  with ops.samples_vmapped(x.shape[0]):
    return jax.vmap(lambda xi: jax.jacrev(lambda p: apply_fn(p, xi[None])[0])(params))(x)


def jacobian_ntk(apply_fn: Callable, params, x, coupled: bool = True):
  """The full NTK ``(B, B, K, K)`` as ``J J^T`` from :func:`jacobian` (no neural-tangents)."""
  jac = jacobian(apply_fn, params, x, coupled)
  leaves = jax.tree_util.tree_leaves(jac)
  b, k = leaves[0].shape[:2]
  return sum(jnp.einsum("ikp,jlp->ijkl", j.reshape(b, k, -1), j.reshape(b, k, -1))
             for j in leaves)
