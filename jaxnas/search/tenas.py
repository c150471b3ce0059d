"""TE-NAS: prune the supernet by NTK condition number and number of linear regions (Chen, Gong,
Wang, ICLR 2021; code VITA-Group/TENAS ``prune_tenas.py``; methods-spec §7.3).

Start from the supernet with every op but ``none`` (TE-NAS disables ``none`` with alpha = -inf);
each edge mixes its remaining ops with equal weights (softmax of equal alphas). Every round, for
every remaining op (e, k) on an edge with more than one op left, compare the supernet with and
without it:

  dkappa_{e,k} = (kappa_full - kappa_{-(e,k)}) / kappa_full       (NTK condition number, lower is
  dR_{e,k}     = (R_full - R_{-(e,k)}) / R_full                    better; linear regions, higher)

averaged over ``repeats`` fresh initialisations and minibatches. Rank dkappa in descending order
and dR in ascending order (ties share the lowest rank, values rounded to 3 significant figures), add
the two ranks, and prune on every edge the op with the smallest sum (removing it lowers kappa the
most and costs the fewest regions). NB201 needs 3 rounds (4 ops -> 1 per edge).

kappa and R come from the ``tenas_ntk_cond`` / ``tenas_regions`` definitions
(:mod:`jaxnas.proxies.tenas`): kappa of ``Theta = G G^T`` with ``G`` the Jacobian of the batched
train-mode map ``theta -> sum_c f_c(x_i)`` over every "weight" tensor, on ``ntk_batch`` = 72 images
of a C=3, N=1 supernet (TE-NAS on NB201); R = distinct ReLU patterns over 1000 random 4x4 crops on a
thin C=1, N=1 supernet (our NB201 network keeps its stem; TE-NAS' thin net has none).
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import tenas as T
from jaxnas.search import _supernet as S
from jaxnas.search import register_method
from jaxnas.search.result import finish
from jaxnas.spaces import Network

DEFAULTS = dict(repeats=3, ntk_batch=72, ntk_supernet={"C": 3, "N": 1},
                region_supernet={"C": 1, "N": 1}, region_samples=1000, dataset="cifar10-bundled",
                resolution=32, ntk_chunk=72)


def mixture(mask):
  """Equal weights over each edge's remaining ops: ``mask / mask.sum(-1)``."""
  return mask / jnp.maximum(jnp.sum(mask, -1, keepdims=True), 1.0)


def candidates(mask: np.ndarray):
  """The full mask followed by one mask per removable op (edges with > 1 op left), and their
  ``(edge, op)`` positions."""
  where = [(e, k) for e in range(mask.shape[0]) if mask[e].sum() > 1
           for k in range(mask.shape[1]) if mask[e, k] > 0]
  out = [mask]
  for e, k in where:
    m = mask.copy()
    m[e, k] = 0.0
    out.append(m)
  return np.stack(out), where


def _round3(x):
  x = np.asarray(x, np.float64)
  with np.errstate(divide="ignore", invalid="ignore"):
    mag = np.where(x != 0, 10.0 ** (2 - np.floor(np.log10(np.abs(x)))), 1.0)
  return np.round(x * mag) / mag


def rank_sum(dkappa, dregions):
  """TE-NAS importance: rank of ``dkappa`` (descending) + rank of ``dregions`` (ascending), ties
  sharing the lowest rank after rounding to 3 significant figures; the smallest sum is pruned."""
  rk = scipy.stats.rankdata(-_round3(dkappa), method="min") - 1
  rr = scipy.stats.rankdata(_round3(dregions), method="min") - 1
  return rk + rr


def prune(mask: np.ndarray, where, total) -> np.ndarray:
  """Removes on every edge the candidate op with the smallest rank sum ``total``."""
  out = mask.copy()
  best = {}
  for (e, k), v in zip(where, total):
    if e not in best or v < best[e][1]:
      best[e] = (k, v)
  for e, (k, _) in best.items():
    out[e, k] = 0.0
  return out


@functools.lru_cache(maxsize=8)
def _indicators(space, ntk_mod, reg_mod, region_samples: int, ntk_chunk: int):
  """Jitted ``fn(masks (n, ...), key, images) -> (kappa (n,), regions (n,))``: one fresh
  initialisation per call, shared by every mask (the full supernet and its candidates)."""
  def fn(masks, key, images):
    k_ntk, k_reg, k_crop = jax.random.split(key, 3)
    alpha = mixture(masks[0])
    v_ntk = ntk_mod.init(k_ntk, images, alpha)
    crops = T.random_crops(images, k_crop, n=region_samples)
    v_reg = reg_mod.init(k_reg, crops[:2], alpha)

    def one(mask):
      a = mixture(mask)
      kappa = T.condition_number(T.logit_sum_ntk(Network(space, ntk_mod, a), v_ntk, images,
                                                 chunk=ntk_chunk))
      return kappa, T.region_count(Network(space, reg_mod, a), v_reg, crops)

    return jax.lax.map(one, masks)

  return jax.jit(fn)


@register_method("tenas", requires=("supernet", "relu_probe", "cell_bn_affine", "N"),
                 defaults=DEFAULTS)
def tenas(space, key, config):
  """TE-NAS: prune supernet ops by the ranks of NTK-condition-number and linear-region changes.

  Chen et al. ICLR 2021. Options: ``repeats`` (initialisations averaged), ``ntk_batch``,
  ``ntk_supernet`` / ``region_supernet`` (module overrides), ``region_samples``, ``dataset``,
  ``resolution``, ``ntk_chunk`` (Jacobian rows computed together; lower it to save memory).
  """
  t0 = time.perf_counter()
  S.check_space(space, "tenas")
  if config["repeats"] < 1:
    raise JaxnasInputError(f"TE-NAS option 'repeats' must be >= 1, got {config['repeats']}")
  affine = dict(cell_bn_affine=True)
  ntk_mod = S.module(space, affine, config["ntk_supernet"])
  reg_mod = S.module(space, affine, config["region_supernet"])
  mask = np.ones(space.alpha_shape, np.float32)
  mask[..., S.NONE] = 0.0
  n_pad = 1 + int(mask.sum())
  fn = _indicators(space, ntk_mod, reg_mod, config["region_samples"], config["ntk_chunk"])
  trace, rnd = [], 0
  while mask.sum(-1).max() > 1:
    t1 = time.perf_counter()
    cands, where = candidates(mask)
    padded = np.concatenate([cands, np.repeat(cands[:1], n_pad - len(cands), 0)])
    kap, reg = [], []
    for r in range(config["repeats"]):
      k = jax.random.fold_in(jax.random.fold_in(key, rnd), r)
      batch = S.minibatch(k, config["dataset"], config["ntk_batch"], config["resolution"])
      kr, rr = fn(jnp.asarray(padded), k, batch.x)
      kap.append(np.asarray(kr, np.float64)[:len(cands)])
      reg.append(np.asarray(rr, np.float64)[:len(cands)])
    kap, reg = np.mean(kap, 0), np.mean(reg, 0)
    S.check_finite("TE-NAS condition numbers", kap)
    S.check_finite("TE-NAS region counts", reg)
    dk = (kap[0] - kap[1:]) / kap[0]
    dr = (reg[0] - reg[1:]) / reg[0]
    total = rank_sum(dk, dr)
    new = prune(mask, where, total)
    trace.append(dict(round=rnd, kappa_full=kap[0], regions_full=reg[0],
                      candidates=[dict(edge=e, op=k, dkappa=float(a), dregions=float(b),
                                       rank_sum=int(c))
                                  for (e, k), a, b, c in zip(where, dk, dr, total)],
                      pruned=[[int(e), int(k)] for e, k in zip(*np.nonzero(mask - new))],
                      seconds=time.perf_counter() - t1))
    mask, rnd = new, rnd + 1
  arch = S.discretize(space, mask, exclude_none=True, mask=mask)
  return finish("tenas", space, arch, t0, trace, config)
