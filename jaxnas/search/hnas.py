"""HNAS: hybrid search with a training-free objective tuned by Bayesian optimisation (Shu, Dai, Wu,
Low, NeurIPS 2022, arXiv 2201.09785; code shuyao95/HNAS ``nasbench/nasbench2_search.py``;
methods-spec §4.2-4.3).

Objective of an architecture A, from its NTK trace norm ``M(A)`` (``hnas_trace``) and condition
number ``kappa(A)`` (``hnas_cond``), both computed at initialisation:

  F(A; T, c) = 10^c |M(A)^2 - (s T)^2| + kappa(A) / (M(A) + 1e-6),      s = 5e3 on NB201,

minimised over a candidate pool. The hyperparameters ``(T, c) in (0, 1) x (-4, 0)`` are chosen by
Bayesian optimisation whose target is the *observed* performance of ``argmin_pool F``: the
benchmark's 12-epoch validation accuracy (``cifar10valid_val12``, what the hybrid method pays a
short training for). Loop (query budget ``queries`` = 20):

1. 5 initial probes (``min(floor(0.25 queries), 10)``, at least 1) at ``T = linspace(0, 1, 5)``,
   ``c = -2``;
   then expected improvement (``xi`` = 0) on a Matern-5/2 GP (:mod:`jaxnas.search.gp`).
2. Each query draws ``pool`` = 2000 random architectures, added to the pool accumulated over the
   queries (deduplicated); architectures already queried are excluded; the pool's argmin F is
   queried.
3. The result is the queried architecture with the best observed (12-epoch) accuracy.

Cost. ``M`` and ``kappa`` need per-sample gradients of a batch of 64 (about 3 s per architecture and
metric at full size on a 2-core CPU through the equal-copies route, :mod:`jaxnas.ntk._copies`;
BENCHMARKS.md). HNAS precomputes them for the whole space; here either ``scores_file``
names a CSV of precomputed ``hnas_trace`` / ``hnas_cond`` scores (columns ``index, proxy, score``,
as ``jaxnas score`` writes), which then restricts the candidates to the scored architectures, or
the pool's metrics are computed on demand (cached), with ``config`` / ``batch_size`` / ``dataset``
setting the network and batch.
"""

from __future__ import annotations

import csv
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasInputError, unknown
from jaxnas.proxies import get_proxy
from jaxnas.search import _supernet as S
from jaxnas.search import gp as GPm
from jaxnas.search import register_method
from jaxnas.search.result import finish
from jaxnas.spaces import Network

ACQUISITIONS = ("ei", "ucb")
DEFAULTS = dict(queries=20, pool=2000, scale=5e3, init_c=-2.0, t_low=0.0, t_high=1.0,
                c_low=-4.0, c_high=0.0, acquisition="ei", xi=0.0, kappa=2.576,
                observed="cifar10valid_val12", scores_file=None, batch_size=64,
                dataset="cifar10-bundled", resolution=32, config={}, chunk_size=8)


def objective(m, kappa, T: float, c: float, scale: float):
  """``F = 10^c |M^2 - (scale T)^2| + kappa / (M + 1e-6)`` (lower is better)."""
  m, kappa = np.asarray(m, np.float64), np.asarray(kappa, np.float64)
  return 10.0 ** c * np.abs(m ** 2 - (scale * T) ** 2) + kappa / (m + 1e-6)


def read_scores_file(path: str):
  """``{index: (M, kappa)}`` from a long scores CSV holding ``hnas_trace`` and ``hnas_cond``."""
  if not os.path.isfile(path):
    raise JaxnasInputError(f"HNAS scores file {path!r} does not exist")
  vals: dict = {}
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    if not {"index", "proxy", "score"} <= set(reader.fieldnames or []):
      raise JaxnasInputError(f"HNAS scores file {path!r} needs columns index, proxy, score")
    for row in reader:
      if row["proxy"] in ("hnas_trace", "hnas_cond"):
        vals.setdefault(int(row["index"]), {})[row["proxy"]] = float(row["score"])
  both = {i: (v["hnas_trace"], v["hnas_cond"]) for i, v in vals.items() if len(v) == 2}
  if not both:
    raise JaxnasInputError(f"HNAS scores file {path!r} holds no architecture with both "
                           "hnas_trace and hnas_cond scores")
  return both


@functools.lru_cache(maxsize=8)
def _metrics_fn(space, mod):
  """Jitted ``fn(archs, ids, batch, key) -> (M, kappa)`` over a chunk (``lax.map``); each network
  initialised from ``fold_in(key, id)`` as :func:`jaxnas.engine.score` does."""
  from jaxnas.ntk.spectrum import condition_number
  from jaxnas.proxies.hnas import hnas_kernel

  def one(arch, ident, batch, key):
    net = Network(space, mod, arch)
    variables = net.init(jax.random.split(jax.random.fold_in(key, ident))[0], batch.x)
    theta = hnas_kernel(net, variables, batch)
    return jnp.sqrt(jnp.trace(theta) / theta.shape[0]), condition_number(theta)

  return jax.jit(lambda a, i, b, k: jax.lax.map(lambda t: one(t[0], t[1], b, k), (a, i)))


class Metrics:
  """``(M, kappa)`` of NB201 benchmark indices: from a scores file or computed on demand with the
  ``hnas_trace`` / ``hnas_cond`` definitions (one kernel per architecture gives both)."""

  def __init__(self, space, key, config):
    self.space, self.cache, self.seconds = space, {}, 0.0
    self.universe = None
    if config["scores_file"]:
      self.cache = read_scores_file(config["scores_file"])
      self.universe = np.array(sorted(self.cache), np.int64)
      return
    from jaxnas.engine.scoring import module_for
    mod = module_for(space, get_proxy("hnas_trace"), config["config"])
    k_data, self.key = jax.random.split(key)
    self.batch = S.minibatch(k_data, config["dataset"], config["batch_size"],
                             config["resolution"])
    self.chunk = max(1, config["chunk_size"])
    self.fn = _metrics_fn(space, mod)

  def __call__(self, indices) -> np.ndarray:
    """``(n, 2)`` array of ``(M, kappa)``."""
    indices = np.asarray(indices, np.int64)
    todo = [int(i) for i in dict.fromkeys(indices.tolist()) if int(i) not in self.cache]
    if todo:
      if self.universe is not None:
        raise JaxnasInputError(f"architecture {todo[0]} has no HNAS scores in the scores file")
      t0 = time.perf_counter()
      for s in range(0, len(todo), self.chunk):
        idx = np.asarray(todo[s:s + self.chunk])
        pad = self.chunk - len(idx)
        full = np.concatenate([idx, np.repeat(idx[-1:], pad)]) if pad else idx
        m, k = self.fn(self.space.from_index(full), full.astype(np.int32), self.batch, self.key)
        for i, a, b in zip(idx, np.asarray(m), np.asarray(k)):
          self.cache[int(i)] = (float(a), float(b))
      self.seconds += time.perf_counter() - t0
    return np.array([self.cache[int(i)] for i in indices], np.float64)


@register_method("hnas", requires=("enumerable", "benchmark"), defaults=DEFAULTS)
def hnas(space, key, config):
  """HNAS: BO over (T, c) of F = 10^c|M^2-(sT)^2| + kappa/M, observing 12-epoch accuracy.

  Shu et al. NeurIPS 2022. Options: ``queries`` (20), ``pool`` (2000 per query), ``scale`` s,
  ``init_c``, T/c bounds, ``acquisition`` ei|ucb, ``xi``, ``kappa``, ``observed`` (benchmark
  metric queried; 12-epoch), ``scores_file`` (precomputed hnas_trace/hnas_cond CSV), and for
  on-demand metrics ``batch_size``, ``dataset``, ``resolution``, ``config``, ``chunk_size``.
  """
  t0 = time.perf_counter()
  if config["acquisition"] not in ACQUISITIONS:
    raise unknown("HNAS acquisition", config["acquisition"], ACQUISITIONS)
  if config["observed"] not in space.metrics:
    raise unknown(f"{space.name} benchmark metric", config["observed"], space.metrics)
  if config["queries"] < 1 or config["pool"] < 1:
    raise JaxnasInputError(f"HNAS needs queries >= 1 and pool >= 1, got {config['queries']} and "
                           f"{config['pool']}")
  k_metrics, k_pool, k_bo = jax.random.split(key, 3)
  metrics = Metrics(space, k_metrics, config)
  universe = metrics.universe if metrics.universe is not None else np.arange(space.num_archs)
  rng = np.random.default_rng(S.seed_of(k_bo))
  pool_rng = np.random.default_rng(S.seed_of(k_pool))
  bounds = [(config["t_low"], config["t_high"]), (config["c_low"], config["c_high"])]
  n_init = max(1, min(int(config["queries"] * 0.25), 10))
  probes = [(float(t), config["init_c"]) for t in np.linspace(config["t_low"], config["t_high"],
                                                               n_init)]
  pool = np.zeros(0, np.int64)
  queried, xs, ys, trace = [], [], [], []
  for q in range(config["queries"]):
    t1 = time.perf_counter()
    if q < len(probes):
      T, c = probes[q]
    else:
      model = GPm.fit(np.array(xs), np.array(ys), rng)
      T, c = (float(v) for v in GPm.suggest(model, bounds, max(ys), rng, config["acquisition"],
                                            config["xi"], config["kappa"]))
    draw = pool_rng.choice(len(universe), min(config["pool"], len(universe)), replace=False)
    pool = np.union1d(pool, universe[draw])
    cand = np.setdiff1d(pool, np.asarray(queried, np.int64))
    if len(cand) == 0:
      break
    mk = metrics(cand)
    f = objective(mk[:, 0], mk[:, 1], T, c, config["scale"])
    f = np.where(np.isnan(f), np.inf, f)
    best = int(cand[int(np.argmin(f))])
    acc = float(space.accuracy(space.from_index(np.asarray([best])), config["observed"])[0])
    queried.append(best)
    xs.append([T, c])
    ys.append(acc)
    trace.append(dict(query=q, T=T, c=c, index=best, arch=space.decode(space.from_index(best)),
                      observed=acc, M=float(metrics([best])[0, 0]),
                      kappa=float(metrics([best])[0, 1]), pool=int(len(pool)),
                      seconds=time.perf_counter() - t1))
  i = int(np.argmax(ys))
  return finish("hnas", space, space.from_index(queried[i]), t0, trace, config,
                queries=len(queried), best_observed=ys[i], n_scored=len(metrics.cache), metric_seconds=metrics.seconds)
