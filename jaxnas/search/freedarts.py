"""FreeDARTS and FreeNAS: operation selection by pruning-at-initialisation scores of alpha.

Zhang et al., arXiv 2106.11542: v1 "FreeNAS" (FreeFlow, iterative), v2 "FreeDARTS" (public
code, one-shot), v4 "ZEROS"; methods-spec §2 and §5. The supernet's edges output
``sum_k alpha_k op_k(x)`` with the **raw** alpha (no softmax), ``alpha_0 = 1e-3 N(0, 1)`` of
shape ``space.alpha_shape`` (shared by all cells of a type), cell BN without affine parameters,
train mode. Criteria (``criterion``):

* ``synflow`` (FreeDARTS / FreeFlow, label- and data-free): every parameter made absolute, alpha
  too on NB201 (``abs_alpha``; the DARTS code keeps alpha outside the state dict), one all-ones
  image, ``R = sum of logits``, ``S = |alpha * dR/dalpha|``
  (:func:`jaxnas.proxies.freeflow.sensitivity`).
* ``snip``: ``S = |alpha * dL_CE/dalpha|`` on one labelled batch (``batch_size`` 64), weights as
  initialised.
* ``grasp``: one Adam step on alpha (lr ``grasp_lr``) from ``alpha_saved = alpha_0``, then
  ``g = dL/dalpha`` (held constant) and ``Hg = d(g . dL/dalpha)/dalpha`` at the new alpha;
  ``S = alpha_saved * Hg`` (keep the largest). [UNVERIFIED: the spec gives only "alpha_saved (.)
  H g after one Adam step"; the step size and the point of evaluation are our choice.]

Schedules (``schedule``): ``oneshot`` scores once and discretises (FreeDARTS: ``none`` excluded,
DARTS top-2 edges per node); ``iterative`` (FreeNAS, [UNVERIFIED] schedule from spec §2.2/§5)
removes, every round, the lowest-scoring remaining op of every edge (alpha masked to 0) and
rescores, until one op per edge remains, then discretises with a final score of the pruned supernet.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas.errors import unknown
from jaxnas.proxies import _common
from jaxnas.proxies.freeflow import sensitivity
from jaxnas.search import _supernet as S
from jaxnas.search import register_method
from jaxnas.search.result import finish

CRITERIA = ("synflow", "snip", "grasp")
SCHEDULES = ("oneshot", "iterative")
ABS_ALPHA = ("auto", "true", "false")

DEFAULTS = dict(criterion="synflow", schedule="oneshot", alpha_init=1e-3, abs_alpha="auto",
                supernet={}, resolution=32, batch_size=64, dataset="cifar10-bundled",
                grasp_lr=3e-4)


@functools.lru_cache(maxsize=32)
def _score_fn(mod, criterion: str, abs_alpha: bool, grasp_lr: float):
  """Jitted ``fn(alpha, mask, params, batch) -> (S, aux)`` for one criterion (cached, so repeated
  searches with one configuration compile once per process)."""
  if criterion == "synflow":
    def fn(alpha, mask, params, batch):
      a = (jnp.abs(alpha) if abs_alpha else alpha) * mask
      s, r = sensitivity(mod, params, a, batch.x)
      return s, r
  elif criterion == "snip":
    def fn(alpha, mask, params, batch):
      def loss(a):
        return _common.cross_entropy(mod.apply({"params": params}, batch.x, a * mask), batch.y)
      l, g = jax.value_and_grad(loss)(alpha)
      return jnp.abs(alpha * mask * g), l
  elif criterion == "grasp":
    def fn(alpha, mask, params, batch):
      def loss(a):
        return _common.cross_entropy(mod.apply({"params": params}, batch.x, a * mask), batch.y)
      opt = optax.adam(grasp_lr)
      upd, _ = opt.update(jax.grad(loss)(alpha), opt.init(alpha))
      a1 = optax.apply_updates(alpha, upd)
      l, g = jax.value_and_grad(loss)(a1)
      # H g = d/da <g, dL/da> = d/da (directional derivative of L along g): reverse over forward
      hg = jax.grad(lambda a: jax.jvp(loss, (a,), (g,))[1])(a1)
      return alpha * mask * hg, l
  else:
    raise unknown("FreeDARTS criterion", criterion, CRITERIA)
  return jax.jit(fn)


def prune_lowest(scores, mask):
  """``mask`` with the lowest-scoring remaining op of every edge (rows with > 1 left) removed."""
  s = np.where(mask > 0, scores, np.inf)
  out = mask.copy()
  flat_s, flat_m = s.reshape(-1, s.shape[-1]), out.reshape(-1, s.shape[-1])
  for e in range(flat_s.shape[0]):
    if flat_m[e].sum() > 1:
      flat_m[e, int(np.argmin(flat_s[e]))] = 0.0
  return out


def run(space, key, config, name: str):
  """FreeDARTS / FreeNAS search (see the module docstring); ``name`` labels the result."""
  t0 = time.perf_counter()
  S.check_space(space, name)
  crit, sched = config["criterion"], config["schedule"]
  if crit not in CRITERIA:
    raise unknown("FreeDARTS criterion", crit, CRITERIA)
  if sched not in SCHEDULES:
    raise unknown("FreeDARTS schedule", sched, SCHEDULES)
  if str(config["abs_alpha"]).lower() not in ABS_ALPHA:
    raise unknown("abs_alpha value", config["abs_alpha"], ABS_ALPHA)
  abs_alpha = {"auto": space.name == "nb201" and crit == "synflow", "true": True,
               "false": False}[str(config["abs_alpha"]).lower()]
  k_alpha, k_init, k_data = jax.random.split(key, 3)
  alpha = config["alpha_init"] * jax.random.normal(k_alpha, space.alpha_shape, jnp.float32)
  mod = S.module(space, config["supernet"])
  res = config["resolution"]
  if crit == "synflow":
    batch = S.ones(res)
    from jaxnas.data import Batch
    batch = Batch(batch, jnp.zeros((1,), jnp.int32))
  else:
    batch = S.minibatch(k_data, config["dataset"], config["batch_size"], res)
  params = S.init_params(mod, k_init, batch.x, alpha)
  fn = _score_fn(mod, crit, abs_alpha, config["grasp_lr"])
  mask = np.ones(space.alpha_shape, np.float32)
  mask[..., S.NONE] = 0.0
  trace = []
  while True:
    t1 = time.perf_counter()
    scores, aux = fn(alpha, jnp.asarray(mask), params, batch)
    scores = S.check_finite(
        f"{name} {crit} scores", scores,
        "the supernet overflowed or BN saw a constant input; try a smaller alpha_init")
    trace.append(dict(round=len(trace), objective=float(aux), scores=scores.tolist(),
                      remaining=mask.astype(int).tolist(), seconds=time.perf_counter() - t1))
    if sched == "oneshot" or mask.reshape(-1, mask.shape[-1]).sum(-1).max() <= 1:
      break
    mask = prune_lowest(scores, mask)
  arch = S.discretize(space, scores, exclude_none=True, mask=mask)
  return finish(name, space, arch, t0, trace, config, scores=scores.tolist())


@register_method("freedarts", requires=("supernet",), defaults=DEFAULTS)
def freedarts(space, key, config):
  """FreeDARTS: one-shot |alpha dR/dalpha| (SynFlow on alpha; snip/grasp criteria) at init.

  Zhang et al. arXiv 2106.11542 v2; raw-alpha supernet, |theta|, all-ones input, ``none`` excluded.
  Options: ``criterion`` synflow|snip|grasp, ``schedule`` oneshot|iterative, ``alpha_init``,
  ``abs_alpha`` auto|true|false, ``supernet`` (module overrides), ``resolution``, ``batch_size`` and
  ``dataset`` (snip/grasp), ``grasp_lr``.
  """
  return run(space, key, config, "freedarts")


@register_method("freenas", requires=("supernet",),
                 defaults={**DEFAULTS, "schedule": "iterative"})
def freenas(space, key, config):
  """FreeNAS: FreeFlow scores with iterative pruning (one op per edge per round) and re-scoring.

  Zhang et al. arXiv 2106.11542 v1 [UNVERIFIED schedule, spec §5]; same options as ``freedarts``
  with ``schedule='iterative'`` by default.
  """
  return run(space, key, config, "freenas")
