"""Empirical neural tangent kernels of jaxnas networks, computed by ``neural_tangents``.

The empirical NTK of a network ``f(theta, X)`` with ``B`` samples and ``K`` outputs is

    Theta[i, j, k, l] = <d f_k(x_i) / d theta, d f_l(x_j) / d theta>        (Jacot et al., 2018)

i.e. ``J J^T`` for the Jacobian ``J`` (``B*K x P``); NASI Eq. 1 (Shu et al., ICLR 2022) calls it
``Theta_0`` when taken at initialisation. With ``trace_outputs=True`` the two output axes are traced
(``sum_k Theta[i, j, k, k]``, shape ``(B, B)``), otherwise the full ``(B, B, K, K)`` is returned.
Note: neural-tangents' ``trace_axes`` returns the *mean* over the traced axes (it divides by their
size); the functions here return the trace proper (the sum).

Samples interact under batch-statistics BatchNorm (``bn='batch'``, PyTorch train mode): row
``(i, k)`` of ``J`` is then the derivative of ``f_k(x_i; X)`` computed *inside the batch*, and
neural-tangents' ``vmap_axes=0`` (which evaluates ``f`` one sample at a time) would silently give
the NTK of a different network. Such networks are handled as *coupled*: ``f`` is evaluated on the
whole batch and the samples' rows are selected by index (``vmap_axes=None``); a request for
``vmap_axes=0`` on them is refused. This costs ``B`` times more than the uncoupled case (every row
is a full-batch reverse pass).

Memory: the Jacobian of a chunk of ``c`` samples and ``k`` outputs holds ``c * k * P`` floats.
``sample_chunk`` / ``output_chunk`` split the work into blocks mapped with ``jax.lax.map`` (so the
whole computation stays one jittable function): the traced kernel is summed over output chunks and
assembled from ``(sample chunk, sample chunk)`` blocks.

neural-tangents imports TensorFlow (seconds, ~650 MB); it is imported only when a kernel is built.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

import jax
import jax.numpy as jnp
from flax import traverse_util

from jaxnas.errors import JaxnasInputError, unknown

#: Names of neural-tangents' ``NtkImplementation`` values.
IMPLEMENTATIONS = {
    "auto": 0,
    "jacobian_contraction": 1,
    "ntk_vector_products": 2,
    "structured_derivatives": 3,
}


def import_nt():
  """``neural_tangents``, imported on first use (it pulls in TensorFlow)."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import neural_tangents as nt  # pylint: disable=g-import-not-at-top
  return nt


def _implementation(name: str) -> int:
  if name not in IMPLEMENTATIONS:
    raise unknown("NTK implementation", name, IMPLEMENTATIONS)
  return IMPLEMENTATIONS[name]


def is_coupled(net) -> bool:
  """Whether the samples of a batch interact in ``net`` (any BatchNorm in ``'batch'`` mode)."""
  m = net.module
  return m.bn == "batch" or (getattr(m, "reduction_bn", None) or m.bn) == "batch"


def _chunks(n: int, size: Optional[int], what: str) -> int:
  size = n if size is None else size
  if isinstance(size, bool) or not isinstance(size, int) or size < 1 or n % size:
    raise JaxnasInputError(f"{what} must be a positive divisor of {n}, got {size!r}")
  return size


def kernel_fn(apply_fn: Callable, *, trace_outputs: bool = True, diagonal: bool = False,
              coupled: bool = True, implementation: str = "jacobian_contraction"):
  """A neural-tangents empirical NTK function for ``apply_fn(params, x) -> (n, K)``.

  Args:
    apply_fn: the network as a function of parameters and a batch.
    trace_outputs: trace over the output axis (``trace_axes=(-1,)``) or keep it.
    diagonal: only the sample diagonal (``diagonal_axes=(0,)``).
    coupled: samples interact (batch-statistics BN); then ``vmap_axes=None``. ``False`` asserts
      they do not and uses ``vmap_axes=0`` (much cheaper).
    implementation: a key of :data:`IMPLEMENTATIONS`.

  Returns:
    ``ntk(x1, x2, params)`` as :func:`neural_tangents.empirical_ntk_fn`.
  """
  nt = import_nt()
  return nt.empirical_ntk_fn(
      apply_fn, trace_axes=(-1,) if trace_outputs else (),
      diagonal_axes=(0,) if diagonal else (), vmap_axes=None if coupled else 0,
      implementation=_implementation(implementation))


def empirical_ntk(apply_fn: Callable, params, x, *, trace_outputs: bool = True,
                  diagonal: bool = False, coupled: bool = True,
                  implementation: str = "jacobian_contraction",
                  sample_chunk: Optional[int] = None, output_chunk: Optional[int] = None):
  """The empirical NTK of ``apply_fn`` at ``params`` on the batch ``x``.

  Args:
    apply_fn: ``apply_fn(params, x) -> (B, K)``.
    params: the pytree to differentiate (e.g. a subset of the network's parameters).
    x: the batch, leading axis ``B``.
    trace_outputs: return ``sum_k Theta[i, j, k, k]`` ``(B, B)``; else ``(B, B, K, K)``.
    diagonal: only ``i == j``: ``(B,)`` or ``(B, K, K)``.
    coupled: samples interact through the batch (batch-statistics BN). The batch is then always
      evaluated whole and rows are picked by sample index.
    implementation: a key of :data:`IMPLEMENTATIONS`.
    sample_chunk: samples per block (a divisor of ``B``); default all.
    output_chunk: outputs per block (a divisor of ``K``; only with ``trace_outputs``).

  Returns:
    The kernel, float array of the shapes above.
  """
  n = jax.tree_util.tree_leaves(x)[0].shape[0]
  k_out = jax.eval_shape(apply_fn, params, x).shape[-1]
  c = _chunks(n, sample_chunk, "sample_chunk")
  if output_chunk is not None and not trace_outputs:
    raise JaxnasInputError("output_chunk needs trace_outputs=True (a full output kernel couples "
                           "output chunks); chunk over samples instead")
  kc = _chunks(k_out, output_chunk, "output_chunk")
  n_blocks, n_out = n // c, k_out // kc

  def block_fn(out_block):
    """Kernel function of one output chunk, on sample-index (coupled) or input chunks."""
    def f(p, xb):
      if coupled:
        y = apply_fn(p, x)[xb]
      else:
        y = apply_fn(p, xb)
      return jax.lax.dynamic_slice_in_dim(y, out_block * kc, kc, axis=-1) if n_out > 1 else y
    return kernel_fn(f, trace_outputs=trace_outputs, diagonal=diagonal, coupled=coupled,
                     implementation=implementation)

  def rows(i):
    if coupled:
      return jnp.arange(c) + i * c
    return jax.tree_util.tree_map(lambda a: jax.lax.dynamic_slice_in_dim(a, i * c, c), x)

  # neural-tangents divides a traced kernel by the size of the traced axes (a mean over outputs);
  # multiplying by it back gives the trace proper, sum_k Theta[i, j, k, k].
  scale = float(kc) if trace_outputs else 1.0

  def one_output_chunk(o):
    nt_fn = block_fn(o)
    fn = lambda a, b, p: scale * nt_fn(a, b, p)
    if diagonal:
      out = jax.lax.map(lambda i: fn(rows(i), None, params), jnp.arange(n_blocks))
      return out.reshape((n,) + out.shape[2:])
    if n_blocks == 1:
      return fn(rows(0), None, params)
    pairs = jnp.array([(i, j) for i in range(n_blocks) for j in range(n_blocks)], jnp.int32)
    blocks = jax.lax.map(lambda ij: fn(rows(ij[0]), rows(ij[1]), params), pairs)
    blocks = blocks.reshape((n_blocks, n_blocks, c, c) + blocks.shape[3:])
    return jnp.moveaxis(blocks, 2, 1).reshape((n, n) + blocks.shape[4:])

  if n_out == 1:
    return one_output_chunk(0)
  # ``o`` is traced inside lax.map; the slice offset is dynamic, the kernel function is built once.
  return jnp.sum(jax.lax.map(one_output_chunk, jnp.arange(n_out)), axis=0)


# ------------------------------------------------------------------ networks


def split_params(params, select=None):
  """``(chosen, rest)`` flat dicts of a Flax params tree; ``select`` is a tree of bools (None: all).

  NT differentiates ``chosen``; ``merge_params(chosen, rest)`` rebuilds the tree for ``apply``.
  """
  flat = traverse_util.flatten_dict(params)
  if select is None:
    return flat, {}
  mask = traverse_util.flatten_dict(select)
  chosen = {k: v for k, v in flat.items() if mask[k]}
  rest = {k: v for k, v in flat.items() if not mask[k]}
  if not chosen:
    raise JaxnasInputError("the parameter selection is empty")
  return chosen, rest


def merge_params(chosen, rest):
  """Inverse of :func:`split_params`: the nested params tree of ``chosen`` and ``rest``."""
  return traverse_util.unflatten_dict({**rest, **chosen})


def network_apply(net, variables, select=None):
  """``(apply_fn, chosen)``: logits as a function of the selected parameters (flat dict)."""
  chosen, rest = split_params(variables["params"], select)

  def apply_fn(p, x):
    return net.apply({**variables, "params": merge_params(p, rest)}, x)

  return apply_fn, chosen


def network_ntk(net, variables, x, *, select=None, trace_outputs: bool = True,
                diagonal: bool = False, implementation: str = "jacobian_contraction",
                vmap_axes: Optional[int] = None, sample_chunk: Optional[int] = None,
                output_chunk: Optional[int] = None):
  """Empirical NTK of a :class:`jaxnas.spaces.Network` on the batch ``x`` (NHWC).

  Args:
    net: the bound network; its BN mode decides whether samples are coupled.
    variables: its Flax variables (``params`` and, for ``bn='running'``, ``batch_stats``).
    select: tree of bools over ``params`` choosing the parameters of the kernel (default all),
      e.g. ``jaxnas.spaces.params.select(params, WEIGHTS_AND_BIASES)``.
    vmap_axes: ``None`` (decide from the network: 0 when samples do not interact) or ``0``;
      ``0`` on a network with batch-statistics BN raises :class:`JaxnasInputError`.
    trace_outputs, diagonal, implementation, sample_chunk, output_chunk: see
      :func:`empirical_ntk`.
  """
  coupled = is_coupled(net)
  if vmap_axes not in (None, 0):
    raise JaxnasInputError(f"vmap_axes must be None or 0, got {vmap_axes!r}")
  if vmap_axes == 0 and coupled:
    raise JaxnasInputError(
        "vmap_axes=0 evaluates the network one sample at a time, but this network normalises "
        f"with batch statistics (bn={net.module.bn!r}), so samples interact and the kernel would "
        "be silently wrong; use vmap_axes=None, or bn='running'/'none'")
  apply_fn, chosen = network_apply(net, variables, select)
  return empirical_ntk(apply_fn, chosen, x, trace_outputs=trace_outputs, diagonal=diagonal,
                       coupled=coupled, implementation=implementation,
                       sample_chunk=sample_chunk, output_chunk=output_chunk)
