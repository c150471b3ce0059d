"""NASI: neural architecture search at initialisation by the NTK trace (Shu et al., ICLR 2022,
arXiv 2109.00817; Algorithm 1, methods-spec §6).

The NTK trace of an architecture is estimated from one minibatch by the squared norm of the mean
loss gradient, ``Theta~(A) = || grad_theta (1/b) sum_x L(x; theta, A) ||^2`` (Eq. 11), and the
penalised objective (Eq. 13) is

  R(A) = Theta~(A) - mu * max(0, Theta~(A) - nu).

Algorithm 1 on a one-shot supernet (edges output ``sum_k A_k op_k(x)``) with ``alpha_0 = 0``:

  for t = 1..T:  D_t ~ data (b images), g_t ~ Gumbel(0, 1)^{alpha_shape},
                 A_t = GumbelSoftmax(alpha_0 + g_t; tau),   G_t = d R(A_t) / d alpha_0 on D_t
  alpha* = alpha_0 + (xi / T) sum_t G_t / max(||G_1||, ..., ||G_t||)

(alpha is *not* updated inside the loop: a one-step first-order solution with an AMSGrad-like
running-max normaliser), then ``A* = argmax p_alpha*`` (per-edge argmax; DARTS: the usual parse).

``dTheta~/dalpha`` is computed as ``2 d/dalpha <g, grad_theta L(theta, A(alpha))>`` with ``g`` the
(constant) loss gradient: the inner product is a forward-mode derivative of ``L`` in direction
``g``, so one reverse pass over a ``jvp`` replaces reverse-over-reverse (same value, cheaper).

Choices for the details the spec marks UNVERIFIED (NASI's appendix), all options:

* ``tau`` = 1 and ``hard`` = True: straight-through hard samples (forward one-hot, gradient of the
  soft sample), the GDAS/SNAS convention.
* ``nu_mode`` = ``'adaptive'``: ``nu_t`` = mean of the ``Theta~`` observed before step t (``nu`` is
  the initial value, 500 as NASI-ADA); ``'fixed'`` keeps ``nu`` (NASI-FIX uses 100 on DARTS).
  ``mu`` = 2 as on DARTS.
* Supernet: the space's search supernet with cell BN without affine parameters, train-mode BN,
  PyTorch default init; ``theta`` = every parameter. On this CPU the full NB201 supernet costs
  about 30-90 s per step, so the default NB201 supernet is reduced (``supernet``, see DEFAULTS).
* Loss: cross-entropy (the paper's experiments; the theory uses MSE). ``labels='random'`` and
  ``dataset='gaussian'`` give the label- and data-agnostic variants (paper Table 2).
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasInputError, unknown
from jaxnas.proxies import _common
from jaxnas.search import _supernet as S
from jaxnas.search import register_method
from jaxnas.search.result import finish

NU_MODES = ("adaptive", "fixed")
LABELS = ("true", "random")

DEFAULTS = dict(steps=20, batch_size=32, mu=2.0, nu=500.0, nu_mode="adaptive", tau=1.0,
                hard=True, xi=1.0, dataset="cifar10-bundled", labels="true", supernet={},
                resolution=32, exclude_none=False)


def gumbel_softmax(alpha, g, tau: float, hard: bool):
  """Gumbel-softmax sample ``softmax((alpha + g) / tau)`` over the last axis; with ``hard`` the
  value is the one-hot argmax and the gradient that of the soft sample (straight-through)."""
  soft = jax.nn.softmax((alpha + g) / tau, axis=-1)
  if not hard:
    return soft
  one = jax.nn.one_hot(jnp.argmax(soft, -1), soft.shape[-1], dtype=soft.dtype)
  return one + soft - jax.lax.stop_gradient(soft)


def trace_and_grad(mod, params, alpha, gumbel, batch, tau: float, hard: bool):
  """``(Theta~, dTheta~/dalpha)`` at ``A = GumbelSoftmax(alpha + gumbel)`` on ``batch``.

  ``Theta~ = ||grad_theta CE||^2`` over every parameter; the alpha-gradient is
  ``2 d/dalpha [d/de CE(theta + e g, A(alpha))]_{e=0}`` with ``g = grad_theta CE`` held constant.
  """
  def loss(p, a):
    return _common.cross_entropy(mod.apply({"params": p}, batch.x, a), batch.y)

  a0 = gumbel_softmax(alpha, gumbel, tau, hard)
  g = jax.grad(loss)(params, jax.lax.stop_gradient(a0))
  theta = sum(jnp.sum(jnp.square(x)) for x in jax.tree_util.tree_leaves(g))

  def directional(alpha):
    a = gumbel_softmax(alpha, gumbel, tau, hard)
    return jax.jvp(lambda p: loss(p, a), (params,), (g,))[1]

  return theta, 2.0 * jax.grad(directional)(alpha)


@functools.lru_cache(maxsize=16)
def _step_fn(mod, tau: float, hard: bool):
  """Jitted :func:`trace_and_grad` for one supernet (cached per process)."""
  return jax.jit(lambda p, a, g, batch: trace_and_grad(mod, p, a, g, batch, tau, hard))


def objective_slope(theta: float, mu: float, nu: float) -> float:
  """``dR/dTheta~`` of ``R = Theta~ - mu max(0, Theta~ - nu)``: 1 below ``nu``, ``1 - mu`` above."""
  return 1.0 - mu if theta > nu else 1.0


@register_method("nasi", requires=("supernet",), defaults=DEFAULTS)
def nasi(space, key, config):
  """NASI: one-step Gumbel-softmax ascent of the penalised NTK-trace objective (Algorithm 1).

  Shu et al. ICLR 2022. Options: ``steps`` T, ``batch_size`` b, ``mu``, ``nu``, ``nu_mode``
  adaptive|fixed, ``tau``, ``hard``, ``xi``, ``dataset`` (e.g. gaussian: data-agnostic),
  ``labels`` true|random, ``supernet`` (module overrides), ``resolution``, ``exclude_none``.
  """
  t0 = time.perf_counter()
  S.check_space(space, "nasi")
  if config["nu_mode"] not in NU_MODES:
    raise unknown("NASI nu_mode", config["nu_mode"], NU_MODES)
  if config["labels"] not in LABELS:
    raise unknown("NASI labels", config["labels"], LABELS)
  for k in ("steps", "batch_size"):
    if config[k] < 1:
      raise JaxnasInputError(f"NASI option {k!r} must be a positive integer, got {config[k]}")
  if config["tau"] <= 0:
    raise JaxnasInputError(f"NASI option 'tau' must be positive, got {config['tau']}")
  k_init, k_loop = jax.random.split(key)
  mod = S.module(space, config["supernet"], which="small")
  alpha0 = jnp.zeros(space.alpha_shape, jnp.float32)
  res, b = config["resolution"], config["batch_size"]
  step = _step_fn(mod, config["tau"], config["hard"])
  params = None
  total = np.zeros(space.alpha_shape, np.float64)
  max_norm, nu, seen, trace = 0.0, config["nu"], [], []
  for t in range(config["steps"]):
    t1 = time.perf_counter()
    k_data, k_gumbel = jax.random.split(jax.random.fold_in(k_loop, t))
    batch = S.minibatch(k_data, config["dataset"], b, res, config["labels"] == "random")
    if params is None:
      params = S.init_params(mod, k_init, batch.x, alpha0)
    gumbel = jax.random.gumbel(k_gumbel, space.alpha_shape, jnp.float32)
    theta, dtheta = step(params, alpha0, gumbel, batch)
    theta = float(theta)
    dtheta = S.check_finite("NASI trace gradient", dtheta, "the supernet's loss overflowed")
    if not np.isfinite(theta):
      raise FloatingPointError(f"NASI trace estimate is {theta} at step {t}")
    if config["nu_mode"] == "adaptive" and seen:
      nu = float(np.mean(seen))
    slope = objective_slope(theta, config["mu"], nu)
    g = slope * dtheta.astype(np.float64)
    max_norm = max(max_norm, float(np.linalg.norm(g)))
    if max_norm > 0:
      total += g / max_norm
    seen.append(theta)
    trace.append(dict(step=t, trace=theta, nu=nu, penalised=bool(theta > nu),
                      objective=theta - config["mu"] * max(0.0, theta - nu),
                      grad_norm=float(np.linalg.norm(g)), seconds=time.perf_counter() - t1))
  alpha_star = np.asarray(alpha0, np.float64) + config["xi"] / config["steps"] * total
  arch = S.discretize(space, alpha_star, exclude_none=config["exclude_none"])
  return finish("nasi", space, arch, t0, trace, config, alpha=alpha_star.tolist())
