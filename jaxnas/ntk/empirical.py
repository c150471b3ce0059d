"""Empirical neural tangent kernels of jaxnas networks: jaxnas' own, or neural-tangents' as a check.

The empirical NTK of a network ``f(theta, X)`` with ``B`` samples and ``K`` outputs is

    Theta[i, j, k, l] = <d f_k(x_i) / d theta, d f_l(x_j) / d theta>        (Jacot et al., 2018)

i.e. ``J J^T`` for the Jacobian ``J`` (``B*K x P``); NASI Eq. 1 (Shu et al., ICLR 2022) calls it
``Theta_0`` when taken at initialisation. With ``trace_outputs=True`` the two output axes are traced
(``sum_k Theta[i, j, k, k]``, shape ``(B, B)``), otherwise the full ``(B, B, K, K)`` is returned.

Backends (``backend=``):

* ``'jaxnas'`` (default, current JAX): two routes (``implementation=``), as in Novak et al., ICML
  2022 ("Fast finite width neural tangent kernel"):
  - ``'jacobian_contraction'`` (also ``'auto'``): ``J_1 = jacrev f(., X_1)``, ``J_2`` likewise,
    ``Theta = sum over parameter leaves of J_1 J_2^T``; memory ``B K P`` floats per chunk;
  - ``'ntk_vector_products'``: never forms ``J``; each column ``Theta e_{(j,l)} = J_1 (J_2^T
    e_{(j,l)})`` is one ``vjp`` of ``f(., X_2)`` followed by one ``jvp`` of ``f(., X_1)``,
    ``vmap``-ed over the ``B_2 K`` basis cotangents; memory ``B_2 K`` parameter-sized tangents.
* ``'neural_tangents'``: ``neural_tangents.empirical_ntk_fn`` (its three implementations, adding
  ``'structured_derivatives'``). neural-tangents 0.6.5 imports only on jax 0.4.23, so this backend
  is what the oracle environment uses (``experiments/nt_oracle.py``); elsewhere asking for it is a
  clear error. neural-tangents' ``trace_axes`` returns the *mean* over the traced axes; jaxnas
  returns the trace proper (the sum) with either backend.

Samples interact under batch-statistics BatchNorm (``bn='batch'``, PyTorch train mode): row
``(i, k)`` of ``J`` is then the derivative of ``f_k(x_i; X)`` computed *inside the batch*, and
evaluating ``f`` one sample at a time (neural-tangents' ``vmap_axes=0``) would silently give the
NTK of a different network. Such networks are handled as *coupled*: ``f`` is evaluated on the whole
batch and the samples' rows are selected by index; a request for ``vmap_axes=0`` on them is
refused. This costs ``B`` times more than the uncoupled case (every row is a full-batch reverse
pass); uncoupled networks are differentiated one sample at a time (``vmap`` of ``jacrev``).

Memory: the Jacobian of a chunk of ``c`` samples and ``k`` outputs holds ``c * k * P`` floats.
``sample_chunk`` / ``output_chunk`` split the work into blocks mapped with ``jax.lax.map`` (so the
whole computation stays one jittable function): the traced kernel is summed over output chunks and
assembled from ``(sample chunk, sample chunk)`` blocks.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

import jax
import jax.numpy as jnp
from flax import traverse_util

from jaxnas._loops import map_rows
from jaxnas.errors import JaxnasInputError, unknown

#: Backends of the empirical NTK.
BACKENDS = ("jaxnas", "neural_tangents")
#: Implementations per backend (neural-tangents' ``NtkImplementation`` values for that backend).
IMPLEMENTATIONS = {
    "jaxnas": ("auto", "jacobian_contraction", "ntk_vector_products"),
    "neural_tangents": ("auto", "jacobian_contraction", "ntk_vector_products",
                        "structured_derivatives"),
}
_NT_CODES = {"auto": 0, "jacobian_contraction": 1, "ntk_vector_products": 2,
             "structured_derivatives": 3}


def import_nt():
  """``neural_tangents``, imported on first use; a clear error where it cannot import.

  neural-tangents 0.6.5 (its last release) imports only with jax 0.4.23 (``from jax.core import
  Jaxpr`` and ``jax.util`` are gone from later JAX); it is not part of jaxnas' install.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  try:
    import neural_tangents as nt  # pylint: disable=g-import-not-at-top
  except Exception as e:  # ImportError, or AttributeError from its use of removed JAX APIs
    raise JaxnasInputError(
        f"backend 'neural_tangents' needs neural-tangents, which does not import here "
        f"(jax {jax.__version__}: {type(e).__name__}: {e}). Its last release (0.6.5) runs only "
        "on jax 0.4.23: `pip install jax==0.4.23 jaxlib==0.4.23 'numpy<2' 'scipy<1.13' "
        "neural-tangents==0.6.5` in a separate environment (see README, 'NTK backends'), or use "
        "backend='jaxnas'") from None
  return nt


def check_backend(backend: str, implementation: str = "auto") -> None:
  """Raises :class:`JaxnasInputError` for an unknown backend or implementation."""
  if backend not in BACKENDS:
    raise unknown("NTK backend", backend, BACKENDS)
  if implementation not in IMPLEMENTATIONS[backend]:
    raise unknown(f"NTK implementation of backend {backend!r}", implementation,
                  IMPLEMENTATIONS[backend])


def is_coupled(net) -> bool:
  """Whether the samples of a batch interact in ``net`` (any BatchNorm in ``'batch'`` mode)."""
  m = net.module
  return m.bn == "batch" or (getattr(m, "reduction_bn", None) or m.bn) == "batch"


def _chunks(n: int, size: Optional[int], what: str) -> int:
  size = n if size is None else size
  if isinstance(size, bool) or not isinstance(size, int) or size < 1 or n % size:
    raise JaxnasInputError(f"{what} must be a positive divisor of {n}, got {size!r}")
  return size


def _flat_jacobian(f: Callable, params, x, coupled: bool):
  """Leaves ``(n, K, P_leaf)`` of the Jacobian of ``f(params, x) -> (n, K)``."""
  if coupled:
    jac = jax.jacrev(lambda p: f(p, x))(params)
  else:  # samples independent: differentiate one at a time
    jac = jax.vmap(lambda xi: jax.jacrev(
        lambda p: f(p, jax.tree_util.tree_map(lambda a: a[None], xi))[0])(params))(x)
  return [j.reshape(j.shape[0], j.shape[1], -1) for j in jax.tree_util.tree_leaves(jac)]


def _contract(j1, j2, trace_outputs: bool, diagonal: bool):
  """``sum_leaves J_1 J_2^T`` with the requested output trace / sample diagonal."""
  spec = {(True, True): "ikp,ikp->i", (True, False): "ikp,jkp->ij",
          (False, True): "ikp,ilp->ikl", (False, False): "ikp,jlp->ijkl"}[trace_outputs, diagonal]
  return sum(jnp.einsum(spec, a, b) for a, b in zip(j1, j2))


def _jacobian_contraction(f, trace_outputs, diagonal, coupled):
  def ntk(x1, x2, params):
    j1 = _flat_jacobian(f, params, x1, coupled)
    j2 = j1 if x2 is None else _flat_jacobian(f, params, x2, coupled)
    return _contract(j1, j2, trace_outputs, diagonal)
  return ntk


def _ntk_vector_products(f, trace_outputs, diagonal, coupled):
  del coupled  # f is always evaluated on the whole (index or input) batch here

  def ntk(x1, x2, params):
    x2_ = x1 if x2 is None else x2
    y2, vjp2 = jax.vjp(lambda p: f(p, x2_), params)
    n2, k = y2.shape

    def column(ct):  # Theta e = J_1 (J_2^T e)
      return jax.jvp(lambda p: f(p, x1), (params,), vjp2(ct))[1]

    basis = jnp.eye(n2 * k, dtype=y2.dtype).reshape(n2 * k, n2, k)
    cols = jax.vmap(column)(basis)                                  # [(j, l), i, m]
    n1 = cols.shape[1]
    theta = cols.reshape(n2, k, n1, k).transpose(2, 0, 3, 1)        # [i, j, m, l]
    if diagonal:
      theta = jnp.diagonal(theta, axis1=0, axis2=1)                 # [m, l, i]
      theta = jnp.moveaxis(theta, -1, 0)
      return jnp.einsum("ikk->i", theta) if trace_outputs else theta
    return jnp.einsum("ijkk->ij", theta) if trace_outputs else theta
  return ntk


def kernel_fn(apply_fn: Callable, *, trace_outputs: bool = True, diagonal: bool = False,
              coupled: bool = True, implementation: str = "jacobian_contraction",
              backend: str = "jaxnas"):
  """An empirical NTK function ``ntk(x1, x2, params)`` of ``apply_fn(params, x) -> (n, K)``.

  Args:
    apply_fn: the network as a function of parameters and a batch.
    trace_outputs: return the trace over the output axis (a sum) or keep it.
    diagonal: only the sample diagonal (``x2`` must be ``None``).
    coupled: samples interact (batch-statistics BN); ``x1``/``x2`` are then sample indices of a
      batch that ``apply_fn`` closes over, and the batch is always evaluated whole. ``False``
      asserts they do not (one-sample evaluation, much cheaper).
    implementation: one of ``IMPLEMENTATIONS[backend]``.
    backend: ``'jaxnas'`` or ``'neural_tangents'`` (module docstring).
  """
  check_backend(backend, implementation)
  if backend == "neural_tangents":
    nt = import_nt()
    fn = nt.empirical_ntk_fn(
        apply_fn, trace_axes=(-1,) if trace_outputs else (),
        diagonal_axes=(0,) if diagonal else (), vmap_axes=None if coupled else 0,
        implementation=_NT_CODES[implementation])
    if not trace_outputs:
      return fn

    def summed(x1, x2, params):  # neural-tangents' traced kernel is a mean over the outputs
      k = jax.eval_shape(apply_fn, params, x1).shape[-1]
      return float(k) * fn(x1, x2, params)
    return summed
  route = (_ntk_vector_products if implementation == "ntk_vector_products"
           else _jacobian_contraction)
  return route(apply_fn, trace_outputs, diagonal, coupled)


def empirical_ntk(apply_fn: Callable, params, x, *, trace_outputs: bool = True,
                  diagonal: bool = False, coupled: bool = True,
                  implementation: str = "jacobian_contraction",
                  sample_chunk: Optional[int] = None, output_chunk: Optional[int] = None,
                  backend: str = "jaxnas", python_loops: bool = False):
  """The empirical NTK of ``apply_fn`` at ``params`` on the batch ``x``.

  Args:
    apply_fn: ``apply_fn(params, x) -> (B, K)``.
    params: the pytree to differentiate (e.g. a subset of the network's parameters).
    x: the batch, leading axis ``B``.
    trace_outputs: return ``sum_k Theta[i, j, k, k]`` ``(B, B)``; else ``(B, B, K, K)``.
    diagonal: only ``i == j``: ``(B,)`` or ``(B, K, K)``.
    coupled: samples interact through the batch (batch-statistics BN). The batch is then always
      evaluated whole and rows are picked by sample index.
    implementation: one of ``IMPLEMENTATIONS[backend]``.
    sample_chunk: samples per block (a divisor of ``B``); default all.
    output_chunk: outputs per block (a divisor of ``K``; only with ``trace_outputs``).
    backend: ``'jaxnas'`` (default) or ``'neural_tangents'`` (module docstring).
    python_loops: loop over chunks in Python instead of ``lax.map`` (same values; for networks
      run eagerly, see :mod:`jaxnas._loops`).

  Returns:
    The kernel, float array of the shapes above.
  """
  check_backend(backend, implementation)
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
                     implementation=implementation, backend=backend)

  def rows(i):
    if coupled:
      return jnp.arange(c) + i * c
    return jax.tree_util.tree_map(lambda a: jax.lax.dynamic_slice_in_dim(a, i * c, c), x)

  def one_output_chunk(o):
    fn = block_fn(o)
    if diagonal:
      out = map_rows(lambda i: fn(rows(i), None, params), jnp.arange(n_blocks), python_loops)
      return out.reshape((n,) + out.shape[2:])
    if n_blocks == 1:
      return fn(rows(0), None, params)
    pairs = jnp.array([(i, j) for i in range(n_blocks) for j in range(n_blocks)], jnp.int32)
    blocks = map_rows(lambda ij: fn(rows(ij[0]), rows(ij[1]), params), pairs, python_loops)
    blocks = blocks.reshape((n_blocks, n_blocks, c, c) + blocks.shape[3:])
    return jnp.moveaxis(blocks, 2, 1).reshape((n, n) + blocks.shape[4:])

  if n_out == 1:
    return one_output_chunk(0)
  # ``o`` is traced inside lax.map; the slice offset is dynamic, the kernel function is built once.
  return jnp.sum(map_rows(one_output_chunk, jnp.arange(n_out), python_loops), axis=0)


# ------------------------------------------------------------------ networks


def split_params(params, select=None):
  """``(chosen, rest)`` flat dicts of a Flax params tree; ``select`` is a tree of bools (None: all).

  The kernel differentiates ``chosen``; ``merge_params(chosen, rest)`` rebuilds the tree for ``apply``.
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
                output_chunk: Optional[int] = None, backend: str = "jaxnas"):
  """Empirical NTK of a :class:`jaxnas.spaces.Network` on the batch ``x`` (NHWC).

  Args:
    net: the bound network; its BN mode decides whether samples are coupled.
    variables: its Flax variables (``params`` and, for ``bn='running'``, ``batch_stats``).
    select: tree of bools over ``params`` choosing the parameters of the kernel (default all),
      e.g. ``jaxnas.spaces.params.select(params, WEIGHTS_AND_BIASES)``.
    vmap_axes: ``None`` (decide from the network: 0 when samples do not interact) or ``0``;
      ``0`` on a network with batch-statistics BN raises :class:`JaxnasInputError`.
    trace_outputs, diagonal, implementation, sample_chunk, output_chunk, backend: see
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
                       sample_chunk=sample_chunk, output_chunk=output_chunk, backend=backend,
                       python_loops=getattr(net, "unrolled", False))
