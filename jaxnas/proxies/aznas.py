"""AZ-NAS: assembling zero-cost proxies (Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for
Network Architecture Search", CVPR 2024, arXiv 2403.19232; code cvlab-yonsei/AZ-NAS
``NB201/ZeroShotProxy/compute_az_nas_score.py``, methods-spec §10).

Four components, each registered as its own proxy (all higher-is-better), combined over a
candidate *pool* by :func:`aggregate`. The network runs in train mode (batch statistics) with
Kaiming-normal fan-in weights (biases 0, BN scale 1 and bias 0) on ``B = 64`` standard Gaussian
images at the resolution of ``batch.x`` (a fresh draw per architecture: from the proxy's key). The
features are the ``L + 1`` block outputs ``f_0..f_L`` (stem, then every cell and reduction block in
order; 18 for NB201 with N = 5; the head is not used; on NB101 the stem and its 9 cells, the
max-pool that opens a stack counted in the cell it feeds: the reference has no NB101 code, this
is its block definition applied to NB101's stages). Write ``X_l`` for ``f_l`` reshaped to
``(B H W, C)`` (each position a sample, each channel a variable)::

    e_l = - sum_i p_i ln(p_i + 1e-8),  p = s / sum(s),  s = eigvalsh(Xc^T Xc / n)   (Xc centred)
    az_expressivity  E = sum_{l=0..L} e_l
    az_progressivity P = min_{l=1..L} (e_l - e_{l-1})
    az_trainability  T = mean_{l=1..L} t_l,  t_l = -sigma_l - 1 / (sigma_l + 1e-6) + 2
                     sigma_l = largest singular value of  G_in^T G_out / n_l,
                     G_out = r_l (B H_l W_l, C_l), r_l Rademacher of f_l's shape (a new draw per
                     block), G_in = (d f_l / d f_{l-1})^T r_l (the vector-Jacobian product through
                     block l alone, BN's batch coupling included), space-to-depth (pixel
                     unshuffle) to f_l's resolution when the block reduces it;
                     t_l = -inf when G_in equals r_l exactly (an identity block)
    az_complexity    C = FLOPs (multiply-accumulates of conv and dense layers, plus the classifier
                     bias: the xautodl counter behind the NATS-Bench API), in millions

and the AZ-NAS score of candidate ``i`` in a pool of ``N`` architectures is
``sum_m ln(rank_m(i) / N)`` over the components, ranks ascending with ties averaged
(:func:`aggregate`). That score is pool-relative: it has no per-architecture form, so ``aznas`` is
registered as a :class:`jaxnas.proxies.Pooled` score of the four components (the engine stores the
components; ``jaxnas score`` / ``correlate`` / the searches rank them over the set they hold).

Implementation: the network's ``tap`` gives every block output (sites ``'stem'``, ``'cell'``,
``'reduction'``; the entropies are computed there, and ``<r_l, f_l>`` for T), its ``block_input``
replaces each block's input ``h`` by ``stop_gradient(h) + delta_l``: one backward pass of
``sum_l <r_l, f_l>`` then yields every block's own vector-Jacobian product as ``d / d delta_l``
(the reference runs 17 separate ``autograd.grad`` calls on the retained graph). The space's
``block_shapes`` gives the deltas' shapes (``SearchSpace.block_shapes``: NB201, NB101).

Degenerate values (documented deviations; the reference returns -inf, which the contract of this
package forbids): a block whose centred features are exactly 0 (``sum(s) = 0``, e.g. the output of
a cell whose node 3 receives only zeros) makes ``p`` NaN in the reference, hence E = P = -inf; an
identity block makes T = -inf. Each such component is :data:`DEGENERATE` = -1e30 here (below any
attainable value; :func:`aggregate` ranks it as -inf, tied at the bottom). Eigenvalues are
clipped at 0 before normalising: round-off negatives below -1e-8 * sum(s) would make
``ln(p + 1e-8)`` NaN in the reference at random.
"""

from __future__ import annotations

import itertools
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import joint
from jaxnas.proxies._pool import DEGENERATE, log_ranks
from jaxnas.proxies.registry import register, register_pooled
from jaxnas.spaces import sum_probes

#: Gaussian inputs per architecture (the reference's search batch on NB201).
BATCH_SIZE = 64
#: Module configuration: train-mode BN, Kaiming-normal fan-in initialisation.
CONFIG = {"bn": "batch", "weight_init": "kaiming_normal"}
#: The paper's four components, by registered proxy name.
COMPONENTS = ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")
_LOG_EPS = 1e-8
_SIGMA_EPS = 1e-6
_BLOCK_SITES = ("stem", "cell", "reduction")
# float32 products for the small statistics matrices (no TF32/bfloat16 passes on accelerators)
_HIGHEST = jax.lax.Precision.HIGHEST


# ------------------------------------------------------------------------------- pieces


def _check_network(net, name):
  fields = getattr(net.module, "__dataclass_fields__", {})
  if "tap" not in fields or "block_input" not in fields or net.space.block_shapes is None:
    raise JaxnasInputError(f"{name} needs the network's block taps and block shapes (tap, "
                           f"block_input, block_shapes); the {net.space.name!r} network has none")


def block_shapes(net, x) -> tuple:
  """``((in_shape, out_shape), ...)`` of ``net``'s blocks ``1..L`` on the input ``x`` (the space's
  ``block_shapes``)."""
  return tuple((tuple(i), tuple(o)) for i, o in net.space.block_shapes(tuple(x.shape),
                                                                       **net.config()))


def _groups(shapes) -> list:
  """Runs ``[first block, count, in_shape]`` of consecutive blocks sharing an input shape (one
  stacked delta each: a block's input is found by its shape, its place in the run by its index,
  which the scanned NB201 build passes traced)."""
  runs = []
  for l, (i, _) in enumerate(shapes, 1):
    if runs and runs[-1][2] == i:
      runs[-1][1] += 1
    elif any(r[2] == i for r in runs):
      raise JaxnasInputError(f"AZ-NAS: blocks {l} and earlier ones share the input shape {i} "
                             "but are not consecutive; the space's block_shapes cannot be grouped")
    else:
      runs.append([l, 1, i])
  return runs


def gaussian_input(key, batch):
  """``(64, H, W, C)`` standard normal images at the shape of ``batch.x`` (``torch.randn``)."""
  return jax.random.normal(key, (BATCH_SIZE,) + tuple(batch.x.shape[1:]), jnp.float32)


def entropy(f):
  """``(e, ok)``: spectral entropy of the channel covariance of features ``f`` ``(B, H, W, C)``.

  ``e = -sum_i p_i ln(p_i + 1e-8)``, ``p = s / sum(s)``, ``s`` the eigenvalues (clipped at 0) of
  ``Xc^T Xc / n``. ``ok`` is False where the reference gives NaN (``sum(s) = 0``: constant
  features) or the value is not finite; ``e`` is then 0.
  """
  x = f.reshape(-1, f.shape[-1])
  x = x - jnp.mean(x, axis=0, keepdims=True)
  s = jnp.maximum(jnp.linalg.eigvalsh(jnp.matmul(x.T, x, precision=_HIGHEST) / x.shape[0]), 0.0)
  total = jnp.sum(s)
  ok = total > 0
  p = s / jnp.where(ok, total, 1.0)
  e = -jnp.sum(p * jnp.log(p + _LOG_EPS))
  ok = ok & jnp.isfinite(e)
  return jnp.where(ok, e, 0.0), ok


def rademacher(key, block, shape):
  """The Rademacher (+-1) cotangent ``r_l`` of block ``block`` (drawn from ``fold_in(key, l)``)."""
  return jax.random.rademacher(jax.random.fold_in(key, block), shape, jnp.float32)


def pixel_unshuffle(g, s: int):
  """Space-to-depth ``(B, H, W, C) -> (B, H/s, W/s, C s^2)`` (PyTorch ``PixelUnshuffle`` order)."""
  b, h, w, c = g.shape
  g = g.reshape(b, h // s, s, w // s, s, c)
  return g.transpose(0, 1, 3, 5, 2, 4).reshape(b, h // s, w // s, c * s * s)


def block_trainability(g_in, r):
  """``(t, identity)`` of one block from its input gradient ``g_in`` and output cotangent ``r``.

  ``t = -sigma - 1/(sigma + 1e-6) + 2`` with ``sigma`` the largest singular value of
  ``G_in^T G_out / n`` (``g_in`` pixel-unshuffled to ``r``'s resolution); ``identity`` is True
  when ``g_in == r`` exactly (the reference's -inf).
  """
  identity = jnp.array(False)
  if g_in.shape == r.shape:
    identity = jnp.all(g_in == r)
  if g_in.shape[1] != r.shape[1]:
    g_in = pixel_unshuffle(g_in, g_in.shape[1] // r.shape[1])
  n = r.shape[0] * r.shape[1] * r.shape[2]
  m = jnp.matmul(g_in.reshape(n, -1).T, r.reshape(n, -1), precision=_HIGHEST) / n
  sigma = jnp.linalg.svd(m, compute_uv=False)[0]
  return -sigma - 1.0 / (sigma + _SIGMA_EPS) + 2.0, identity


def _block_tap(num: int, key_r=None):
  """Tap giving per-block entropies (one-hot at the block index) and, with ``key_r``, the sum of
  ``<r_l, f_l>`` over the cell and reduction blocks."""
  def tap(site, h, block, part):
    del part
    out = {"entropy": jnp.zeros((num,), jnp.float32), "dead": jnp.zeros((num,), jnp.float32)}
    if key_r is not None:
      out["dot"] = jnp.zeros((), jnp.float32)
    if site not in _BLOCK_SITES:
      return out
    e, ok = entropy(jax.lax.stop_gradient(h).astype(jnp.float32))
    here = jnp.arange(num) == block
    out["entropy"] = jnp.where(here, e, 0.0)
    out["dead"] = jnp.where(here & ~ok, 1.0, 0.0)
    if key_r is not None and site != "stem":
      out["dot"] = jnp.sum(rademacher(key_r, block, h.shape) * h).astype(jnp.float32)
    return out
  tap.sites = _BLOCK_SITES   # zeros elsewhere (NB201Net.tap)
  return tap


def block_entropies(net, variables, x):
  """``(e, ok)`` ``(L+1,)`` per block (stem first) of ``net`` on ``x`` (one forward pass)."""
  _check_network(net, "AZ-NAS")
  num = 1 + len(block_shapes(net, x))
  tapped = net.replace(tap=_block_tap(num)).apply(
      variables, x, mutable=["intermediates"])[1]["intermediates"]
  t = sum_probes(tapped, "tap")
  return t["entropy"], t["dead"] == 0


def block_trainabilities(net, variables, x, key_r):
  """``(t, identity, e, ok)``: per block ``l = 1..L`` in forward order ``t_l`` and the identity
  flag, and the per-block entropies of :func:`block_entropies` (from the same forward pass). One
  forward and one backward pass: each block's input ``h`` becomes ``stop_gradient(h) +
  delta_l``, and ``d sum_l <r_l, f_l> / d delta_l`` is block ``l``'s own VJP of ``r_l``."""
  _check_network(net, "AZ-NAS")
  shapes = block_shapes(net, x)
  runs = _groups(shapes)
  deltas = [jnp.zeros((count,) + shape, jnp.float32) for _, count, shape in runs]
  in_shapes = [shape for _, _, shape in runs]

  def forward(deltas):
    def block_input(h, block):
      g = in_shapes.index(tuple(h.shape))
      return jax.lax.stop_gradient(h) + deltas[g][block - runs[g][0]].astype(h.dtype)

    net2 = net.replace(tap=_block_tap(1 + len(shapes), key_r), block_input=block_input)
    _, st = net2.apply(variables, x, mutable=["intermediates"])
    t = sum_probes(st["intermediates"], "tap")
    return t["dot"], (t["entropy"], t["dead"] == 0)

  _, pullback, (e, ok) = jax.vjp(forward, deltas, has_aux=True)
  (grads,) = pullback(jnp.ones((), jnp.float32))
  ts, ids = [], []
  for (first, count, _), g in zip(runs, grads):
    # vmapped over consecutive blocks with one output shape
    for out, same in itertools.groupby(range(first, first + count), lambda l: shapes[l - 1][1]):
      blocks = np.asarray(list(same))
      r = jax.vmap(lambda l, out=out: rademacher(key_r, l, out))(jnp.asarray(blocks))
      t, ident = jax.vmap(block_trainability)(g[blocks[0] - first:blocks[-1] - first + 1], r)
      ts.append(t)
      ids.append(ident)
  return jnp.concatenate(ts), jnp.concatenate(ids), e, ok


def expressivity_of(e, ok):
  """``E = sum_l e_l``; :data:`DEGENERATE` if any block is degenerate."""
  return jnp.where(jnp.all(ok), jnp.sum(e), DEGENERATE)


def progressivity_of(e, ok):
  """``P = min_l (e_l - e_{l-1})``; :data:`DEGENERATE` if any block is degenerate."""
  return jnp.where(jnp.all(ok), jnp.min(e[1:] - e[:-1]), DEGENERATE)


def trainability_of(t, identity):
  """``T = mean_l t_l``; :data:`DEGENERATE` for an identity block or a non-finite mean."""
  v = jnp.mean(t)
  return jnp.where(jnp.any(identity) | ~jnp.isfinite(v), DEGENERATE, jnp.maximum(v, DEGENERATE))


def _keys(key):
  k_x, k_r = jax.random.split(key)
  return k_x, k_r


def complexity_of(net, batch):
  """FLOPs in millions: conv and dense multiply-accumulates plus the classifier bias."""
  res = batch.x.shape[1] if batch is not None and getattr(batch, "x", None) is not None else 32
  cfg = {**net.config(), "convention": "macs"}
  flops = net.space.count_flops(net.arch, resolution=res, **cfg)
  return (flops + getattr(net.module, "num_classes", 0)) / 1e6


def components(net, variables, batch, key) -> dict:
  """All four AZ-NAS components of one architecture from one forward and one backward pass:
  ``{'expressivity', 'progressivity', 'trainability', 'complexity'}`` (scalars), the values the
  four registered proxies give for the same arguments."""
  k_x, k_r = _keys(key)
  t, ident, e, ok = block_trainabilities(net, variables, gaussian_input(k_x, batch), k_r)
  return {"expressivity": expressivity_of(e, ok), "progressivity": progressivity_of(e, ok),
          "trainability": trainability_of(t, ident), "complexity": complexity_of(net, batch)}


def _shared_entropies(net, variables, batch, key):
  """:func:`block_entropies` on the Gaussian input of ``key``; one forward pass for both
  expressivity and progressivity when they are scored together (:mod:`jaxnas.proxies.joint`)."""
  def compute():
    k_x, _ = _keys(key)
    return block_entropies(net, variables, gaussian_input(k_x, batch))
  return joint.shared("az_entropies", (net, variables, batch, key), compute)


# --------------------------------------------------------------------- registered proxies


@register("az_expressivity", needs_data=False, batch_size=BATCH_SIZE, config=CONFIG,
          requires=("tap", "block_input", "block_shapes"), shares=("az_entropies",))
def az_expressivity(net, variables, batch, key):
  """AZ-NAS expressivity E = sum_l e_l, spectral entropies of the block outputs (Lee & Ham 2024).

  ``e_l = -sum p ln(p + 1e-8)``, ``p`` the normalised eigenvalues of the channel covariance of
  block output ``l`` (stem and every cell/reduction) on 64 Gaussian images; train-mode BN,
  Kaiming-normal init. A constant block output (reference -inf): -1e30.
  """
  return expressivity_of(*_shared_entropies(net, variables, batch, key))


@register("az_progressivity", needs_data=False, batch_size=BATCH_SIZE, config=CONFIG,
          requires=("tap", "block_input", "block_shapes"), shares=("az_entropies",))
def az_progressivity(net, variables, batch, key):
  """AZ-NAS progressivity P = min_l (e_l - e_{l-1}) over consecutive block entropies (Lee & Ham).

  Same entropies and protocol as ``az_expressivity``; a constant block output (reference -inf):
  -1e30.
  """
  return progressivity_of(*_shared_entropies(net, variables, batch, key))


@register("az_trainability", needs_data=False, batch_size=BATCH_SIZE, config=CONFIG,
          requires=("tap", "block_input", "block_shapes"))
def az_trainability(net, variables, batch, key):
  """AZ-NAS trainability T = mean_l (-sigma_l - 1/(sigma_l + 1e-6) + 2) (Lee & Ham 2024).

  ``sigma_l``: largest singular value of ``G_in^T r_l / n`` with ``r_l`` a Rademacher cotangent of
  block ``l``'s output and ``G_in`` its vector-Jacobian product through block ``l`` alone
  (pixel-unshuffled at reductions). An identity block (reference -inf): -1e30.
  """
  k_x, k_r = _keys(key)
  t, ident, _, _ = block_trainabilities(net, variables, gaussian_input(k_x, batch), k_r)
  return trainability_of(t, ident)


@register("az_complexity", needs_data=False, needs_variables=False)
def az_complexity(net, variables, batch, key):
  """AZ-NAS complexity: FLOPs in millions, conv/dense MACs plus the classifier bias (Lee & Ham).

  The xautodl counter behind the NATS-Bench API values AZ-NAS reads (methods-spec §10.2), i.e.
  ``count_flops(convention='macs') + num_classes``, at the resolution of ``batch.x``.
  """
  del variables, key
  return complexity_of(net, batch)


# ---------------------------------------------------------------------- pool aggregation


@register_pooled("aznas", components=COMPONENTS)
def aggregate(component_scores: Mapping[str, np.ndarray]) -> np.ndarray:
  """AZ-NAS score over a pool: sum of the four components' log-ranks (Lee & Ham, CVPR 2024).

  ``s_i = sum_m ln(rank_m(i) / N)`` for every candidate ``i`` of the pool.

  ``component_scores`` maps each component (the paper: expressivity, progressivity,
  trainability, complexity; any names are accepted) to its values over the same ``N``
  candidates, higher better. ``rank_m`` is ``scipy.stats.rankdata`` (ascending: the largest value
  gets rank ``N``; ties get their average rank). NaN, -inf and values ``<= DEGENERATE`` all count
  as -inf (the reference's NaN -> -inf rule), tied at the bottom. Returns ``(N,)`` float64, at
  most 0 (0: best in every component). Adding or removing candidates changes every score.
  """
  if not isinstance(component_scores, Mapping) or not component_scores:
    raise JaxnasInputError("aggregate needs a non-empty mapping of component name -> scores")
  cols, n = [], None
  for name, v in component_scores.items():
    a = np.asarray(v, np.float64)
    if a.ndim != 1 or a.size == 0:
      raise JaxnasInputError(f"component {name!r} must be a non-empty 1-D array of scores, "
                             f"got shape {a.shape}")
    if n is not None and a.size != n:
      raise JaxnasInputError(f"component {name!r} has {a.size} scores; the others have {n}")
    n = a.size
    cols.append(a)
  return sum(log_ranks(a) for a in cols)
