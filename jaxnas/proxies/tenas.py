"""TE-NAS indicators: NTK condition number and number of linear regions (Chen, Gong, Wang,
"Neural Architecture Search on ImageNet in Four GPU Hours: A Theoretically Inspired Perspective",
ICLR 2021; code VITA-Group/TENAS ``lib/procedures/{ntk,linear_region_counter}.py``, methods-spec
§7.3, §8.3).

**NTK condition number** (``tenas_ntk_cond``, lower is better)::

    G[i] = d( sum_c f_c(x_i) ) / d theta        theta = every "weight" tensor: conv and dense
                                                kernels and BN scales (params.TORCH_WEIGHTS)
    Theta = G G^T  (B, B),   kappa = lambda_max(Theta) / lambda_min(Theta)

``f`` is the *batched* network in train mode: BN statistics couple the samples, and TE-NAS runs B
backward passes of ``sum_c f_c(x_i)`` through the same batched graph, i.e. ``G`` is the Jacobian of
the batched map ``theta -> (sum_c f_c(x_i))_i``. We compute it exactly that way: one forward pass,
then the pullback of the batched map applied to the B basis vectors (``jax.jacrev`` row by row,
in chunks of :data:`NTK_CHUNK` rows), over the network's compact parameters
(:meth:`jaxnas.spaces.Network.compact`; NB101 run eagerly: the discrete layers at their real
widths, 4.3M entries on average instead of the shared layout's 57M). When ``G`` (B rows of the
selected parameters) would exceed :data:`GRAM_BYTES`, it is never formed: column ``j`` of
``Theta`` is ``J (J^T e_j)``, the pullback of ``e_j`` pushed forward through the linearised
network (``jax.linearize``), :data:`NTK_CHUNK` columns at a time (the same kernel to float32
rounding, for one more linearised forward pass per column; NB101's shared layout, a 15 GiB ``G``
at B = 72, took this route for every cell: ~19 min and 15.3 GiB per cell on this CPU; with the
compact parameters 9 of the 300 benchmark cells, those above 14.9M parameters, still do).
Parameters of unused operations have zero gradient and do not contribute. On CPU
``mode='auto'`` scores it with the ``'eager'`` executor (``cpu_eager``): each of the B
pullbacks through the scanned ``map`` program recomputes every rematerialised cell and
edge, while the discrete network keeps its residuals once; at full NB201 size eager measured
4.6x faster (129 against 595 s per architecture under load, equal scores to 2e-5;
``experiments/bench_executors.py --proxies tenas_ntk_cond``). TE-NAS uses one batch of 72
images on NB201 (``prune_launch.py``) and PyTorch's default initialisation (its Kaiming
re-initialisation is never applied, methods-spec §7.3): the caller's variables. The reference
maps a NaN ratio (all-zero gradients, e.g. a cell of ``none`` edges) to 1e5; we also map a
non-positive smallest eigenvalue (singular Theta, whose ratio is infinite or of the wrong sign
from round-off) to the same :data:`ILL_CONDITIONED` = 1e5. It requires ``nonlinear_readout``: a
network whose logits are affine in train-mode BN outputs (the DARTS network pools and classifies
sums of BN outputs) has ``sum_i G[i] = 0`` over these parameters (BN outputs sum to a constant over
the batch), so ``Theta 1 = 0`` and kappa is float32 round-off; such a space is refused.

**Linear regions** (``tenas_regions``, higher is better): the number of distinct ReLU activation
patterns ``(1[relu input > 0] over every unit of every ReLU)`` over a set of inputs. TE-NAS counts
them as ``sum_i 1 / #{j : pattern_j = pattern_i}``; we compute the pairwise Hamming distances
between patterns exactly (an integer sum over every ReLU, through the network's ``relu_probe``),
so two inputs share a region iff their distance is 0, and return the same sum.

Input protocol (deviations from TE-NAS): TE-NAS feeds 3 batches of 1000 random 3x3 crops of one
random channel of training images to a thin supernet (C=1, N=1, no stem) and compares patterns
across the three batches. We run the network as configured (NB201Net with its stem) on one batch
of :data:`REGION_SAMPLES` = 1000 crops of :data:`CROP` x :data:`CROP` = 4x4 pixels (the smallest
input NB201Net takes) cut at random positions from random images of the given minibatch, one
random channel each, copied to the 3 input channels; BN uses the statistics of these 1000 crops.
The count is at most 1000 and saturates there for wide networks (every crop its own region).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnas._loops import map_rows
from jaxnas.errors import JaxnasInputError
from jaxnas.ntk.empirical import merge_params, split_params
from jaxnas.proxies.registry import register
from jaxnas.spaces import params as P
from jaxnas.spaces import sum_probes

#: TE-NAS batch size on NB201 (``prune_launch.py``).
NTK_BATCH_SIZE = 72
#: Rows of the Jacobian computed together (vmapped) in one step of the row loop.
NTK_CHUNK = 8
#: Largest Jacobian ``G`` (rows x selected parameters, float32 bytes) formed whole; a larger one
#: (NB101's shared layout: 15 GiB) is replaced by NTK-vector products (:func:`logit_sum_ntk`).
#: NB201 (0.45 GiB at B = 72), the DARTS supernet at C=32, 8 cells (1.8 GiB) and 291 of the 300
#: NB101 benchmark cells' compact parameters form ``G``.
GRAM_BYTES = 4 * 2**30
#: Condition number reported when Theta is singular or its ratio is NaN (reference: NaN -> 1e5).
ILL_CONDITIONED = 1e5
#: Number of crops for the linear-region count, and their size.
REGION_SAMPLES = 1000
CROP = 4


# ------------------------------------------------------------------ NTK condition number


def logit_sum_jacobian(net, variables, x, chunk: int = NTK_CHUNK):
  """Rows ``d(sum_c f_c(x_i))/d params`` of the batched map ``params -> (sum_c f_c(x_i))_i``.

  Returns a tree like ``variables['params']`` with leaves ``(B, *param_shape)``: one forward pass,
  then the pullback applied to the basis vectors, ``chunk`` of them vmapped at a time
  (:func:`rows_per_pullback`).
  """
  def f(p):
    return jnp.sum(net.apply({**variables, "params": p}, x), axis=-1)      # (B,)

  y, pullback = jax.vjp(f, variables["params"])
  b = y.shape[0]
  chunk = rows_per_pullback(net, chunk)
  rows = map_rows(lambda e: jax.vmap(lambda ei: pullback(ei)[0])(e), _basis(b, chunk, y.dtype),
                  getattr(net, "unrolled", False))
  return jax.tree_util.tree_map(lambda r: r.reshape((-1,) + r.shape[2:])[:b], rows)


def rows_per_pullback(net, chunk: int) -> int:
  """Basis vectors pulled back together: ``chunk`` (vmapped), or 1 on the unrolled network on CPU,
  where a vmapped pullback makes every kernel gradient a grouped convolution, slow on XLA:CPU: on
  NB101's row 2 (benchmark size, batch 72, compact parameters, two other jobs beside it) 8 rows
  took 142-153 s one by one against 203-207 s vmapped, the same rows to 1e-5."""
  if getattr(net, "unrolled", False) and jax.default_backend() == "cpu":
    return 1
  return chunk


def _basis(b: int, chunk: int, dtype):
  """The ``b`` basis vectors in chunks ``(n_chunks, k, b)``, ``k = min(chunk, b)``; the last chunk
  padded with zero vectors."""
  k = max(1, min(chunk, b))
  n_chunks = -(-b // k)
  return jnp.eye(n_chunks * k, b, dtype=dtype).reshape(n_chunks, k, b)


def ntk_gram(rows, kinds=P.TORCH_WEIGHTS):
  """``Theta = G G^T`` ``(B, B)`` over the parameters of the given roles (default: TE-NAS's
  "weight" tensors) from per-row gradient trees (leading axis = rows)."""
  sel = P.select(jax.tree_util.tree_map(lambda r: r[0], rows), kinds)
  picked = [g for g, s in zip(jax.tree_util.tree_leaves(rows), jax.tree_util.tree_leaves(sel)) if s]
  if not picked:
    raise JaxnasInputError(f"no parameters of the roles {kinds} in the network")
  b = picked[0].shape[0]
  return sum(jnp.dot(g.reshape(b, -1), g.reshape(b, -1).T) for g in picked)


def condition_number(theta):
  """``lambda_max / lambda_min`` of a symmetric PSD matrix; :data:`ILL_CONDITIONED` when
  ``lambda_min <= 0`` or the ratio is not finite."""
  ev = jnp.linalg.eigvalsh(theta)
  lo, hi = ev[0], ev[-1]
  ok = (lo > 0) & jnp.isfinite(hi)
  kappa = hi / jnp.where(ok, lo, 1.0)
  return jnp.where(ok & jnp.isfinite(kappa), kappa, ILL_CONDITIONED)


def logit_sum_ntk(net, variables, x, kinds=P.TORCH_WEIGHTS, chunk: int = NTK_CHUNK,
                  max_bytes: int = GRAM_BYTES):
  """``Theta = G G^T`` ``(B, B)`` of :func:`logit_sum_jacobian`'s rows over the parameters of
  ``kinds``: from ``G`` when it holds at most ``max_bytes``, else column by column as ``J (J^T
  e_j)`` (one pullback and one linearised forward pass per column, ``chunk`` columns vmapped)
  without forming ``G``. The route depends only on shapes, never on the executor."""
  params = variables["params"]
  sel = P.select(params, kinds)
  if not any(jax.tree_util.tree_leaves(sel)):
    raise JaxnasInputError(f"no parameters of the roles {kinds} in the network")
  chosen, rest = split_params(params, sel)
  b = x.shape[0]
  size = sum(a.size * jnp.dtype(a.dtype).itemsize for a in jax.tree_util.tree_leaves(chosen))
  if b * size <= max_bytes:
    return ntk_gram(logit_sum_jacobian(net, variables, x, chunk), kinds)

  def f(p):
    return jnp.sum(net.apply({**variables, "params": merge_params(p, rest)}, x), axis=-1)

  y, pullback = jax.vjp(f, chosen)
  _, push = jax.linearize(f, chosen)
  chunk = rows_per_pullback(net, chunk)
  cols = map_rows(lambda e: jax.vmap(lambda ei: push(pullback(ei)[0]))(e),
                  _basis(b, chunk, y.dtype), getattr(net, "unrolled", False))
  theta = cols.reshape(-1, b)[:b]       # row j = Theta e_j
  return (theta + theta.T) / 2


@register("tenas_ntk_cond", higher_is_better=False, batch_size=NTK_BATCH_SIZE,
          cpu_eager=True, requires=("nonlinear_readout",))
def tenas_ntk_cond(net, variables, batch, key):
  """TE-NAS NTK condition number lambda_max/lambda_min of Theta = G G^T (Chen et al. 2021).

  ``G[i] = d(sum_c f_c(x_i))/d theta`` over every conv/dense kernel and BN scale, rows of the
  Jacobian of the batched train-mode network (BN couples samples); lower is better; NaN or
  singular Theta -> 1e5 (TE-NAS ``get_ntk_n``).
  """
  del key
  return condition_number(logit_sum_ntk(*net.compact(variables), batch.x))


# ------------------------------------------------------------------------- linear regions


def hamming_distance(x):
  """One ReLU's pairwise Hamming distances ``(B, B)`` between the codes ``1[x > 0]``."""
  c = (x > 0).reshape(x.shape[0], -1).astype(jnp.float32)
  s = jnp.sum(c, axis=1)
  return s[:, None] + s[None, :] - 2.0 * (c @ c.T)


def random_crops(images, key, n: int = REGION_SAMPLES, size: int = CROP):
  """``n`` crops ``(n, size, size, 3)``: random image, position and channel (copied to 3)."""
  b, h, w, ch = images.shape
  if h < size or w < size:
    raise JaxnasInputError(f"tenas_regions crops {size}x{size} patches; the images are {h}x{w}")
  ki, ky, kx, kc = jax.random.split(key, 4)
  idx = jax.random.randint(ki, (n,), 0, b)
  ys = jax.random.randint(ky, (n,), 0, h - size + 1)
  xs = jax.random.randint(kx, (n,), 0, w - size + 1)
  cs = jax.random.randint(kc, (n,), 0, ch)

  def one(i, y, x, c):
    patch = jax.lax.dynamic_slice(images[i], (y, x, 0), (size, size, ch))
    return jnp.broadcast_to(jnp.take(patch, c, axis=-1)[..., None], (size, size, 3))

  return jax.vmap(one)(idx, ys, xs, cs)


def count_patterns(distance):
  """Number of distinct patterns ``sum_i 1 / #{j : d_ij = 0}`` from pairwise distances."""
  same = (distance == 0).astype(jnp.float32)
  return jnp.sum(1.0 / jnp.sum(same, axis=1))


def region_count(net, variables, x):
  """Distinct ReLU activation patterns of ``net`` over the inputs ``x`` (one batch)."""
  _, state = net.replace(relu_probe=hamming_distance).apply(variables, x,
                                                            mutable=["intermediates"])
  return count_patterns(sum_probes(state["intermediates"]))


@register("tenas_regions", requires=("relu_probe",))
def tenas_regions(net, variables, batch, key):
  """TE-NAS number of linear regions: distinct ReLU patterns over 1000 random 4x4 crops.

  Crops of one random channel (copied to RGB) of the minibatch images, one train-mode batch;
  patterns compared exactly via summed Hamming distances; ``sum_i 1/#{j: pattern_j = pattern_i}``
  (TE-NAS ``LinearRegionCount``). Higher is better.
  """
  return region_count(net, variables, random_crops(batch.x, key))
