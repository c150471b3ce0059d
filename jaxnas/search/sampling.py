"""Proxy-guided random search and regularised evolution (any registered proxy as the fitness).

* ``random``: score ``n`` architectures drawn uniformly (without replacement in an enumerable
  space) and return the best (NASWOT / epsinas search, methods-spec §3.2, §7.2).
* ``rea``: regularised (aging) evolution, Real et al., AAAI 2019: a population of ``population``
  random architectures; each cycle draws ``sample_size`` members, mutates the best of them
  (``space.mutate``: one op / input changed), scores the child, adds it and removes the oldest
  member; the best architecture ever scored is returned after ``n`` scored architectures in all
  (epsinas' REA uses population 64 and tournaments of 10).

Scoring follows :func:`jaxnas.engine.score`: each architecture's network is initialised from
``fold_in(key, id)`` (``id`` = benchmark index in NB201, a hash of the encoding elsewhere), with
one compiled function for every call and the key drawn from the search key. NaN scores count as
the worst. The proxy's orientation (``higher_is_better``) is respected.

A pool-relative score (``proxy=aznas``) ranks over every architecture the search has scored so
far: ``random`` over its ``n`` draws; ``rea`` re-ranks the population's fitness after every new
child (so a member's fitness can move as the pool grows) and returns the best of all scored
architectures by the final pool.
"""

from __future__ import annotations

import functools
import time
import zlib

import jax
import numpy as np

from jaxnas import engine
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import apply_pooled, get_pooled, get_proxy, is_pooled, supported_proxies
from jaxnas.search import _supernet as S
from jaxnas.search import register_method
from jaxnas.search.result import finish

COMMON = dict(proxy=None, n=1000, batch_size=0, dataset="cifar10-bundled", resolution=32,
              config={}, chunk_size=16, mode="map")


@functools.lru_cache(maxsize=16)
def _score_fn(space, proxy, config, mode):
  return engine.make_score_fn(space, proxy, dict(config), mode)


def _padded(n: int, chunk: int) -> int:
  """Call size for ``n <= chunk`` architectures: ``chunk``, or for a smaller remainder the next
  power of two (so one-at-a-time scoring, as in evolution, costs one architecture, not a chunk,
  and at most ``log2(chunk) + 2`` shapes are ever compiled)."""
  return chunk if n >= chunk else min(chunk, 1 << (n - 1).bit_length())


class Scorer:
  """Scores architectures with one proxy (one compiled function, fixed chunk shape) and caches
  them by architecture."""

  def __init__(self, space, proxy_name, key, options):
    if proxy_name is None:
      ok = supported_proxies(space)
      eg = next((p for p in ("epsilon", "synflow", "nwot") if p in ok), ok[0] if ok else "NAME")
      raise JaxnasInputError(f"this search needs a proxy: give proxy=NAME (e.g. --proxy {eg}); "
                             f"proxies that run on {space.name!r}: {', '.join(ok)}")
    self.space, self.proxy = space, get_proxy(proxy_name)
    self.sign = 1.0 if self.proxy.higher_is_better else -1.0
    k_data, k_score = jax.random.split(key)
    bs = options["batch_size"] or self.proxy.batch_size or 64
    batch = S.minibatch(k_data, options["dataset"], bs, options["resolution"])
    self.batch = engine.scoring.default_batch_for(self.proxy, batch)
    self.key = k_score
    self.chunk = max(1, options["chunk_size"])
    with engine.scoring.x64_context(self.proxy):
      self.fn = _score_fn(space, self.proxy, S.freeze(options["config"]), options["mode"])
    self.cache: dict = {}
    self.seconds = 0.0

  def ids(self, archs):
    """Initialisation ids ``(n,)`` int32 of ``archs`` ``(n, *arch_shape)``: benchmark indices,
    or for a space without them the CRC-32 of each int32 encoding, masked to 31 bits.
    """
    if self.space.to_index is not None:
      return np.asarray(self.space.to_index(archs), np.int32).reshape(-1)
    return np.asarray([zlib.crc32(np.asarray(a, np.int32).tobytes()) & 0x7FFFFFFF
                       for a in archs], np.int32)

  def __call__(self, archs) -> np.ndarray:
    """Scores ``(n, *arch_shape)`` (cached; raw proxy values, NaN kept)."""
    archs = np.asarray(archs, np.int32)
    keys = [a.tobytes() for a in archs]
    todo = {}
    for k, a in zip(keys, archs):
      if k not in self.cache and k not in todo:
        todo[k] = a
    if todo:
      t0 = time.perf_counter()
      new = np.stack(list(todo.values()))
      ids = self.ids(new)
      out = np.empty(len(new), np.float64)
      with engine.scoring.x64_context(self.proxy):
        for s in range(0, len(new), self.chunk):
          a, i = new[s:s + self.chunk], ids[s:s + self.chunk]
          n = len(a)
          pad = _padded(n, self.chunk) - n
          if pad:
            a = np.concatenate([a, np.repeat(a[-1:], pad, 0)])
            i = np.concatenate([i, np.repeat(i[-1:], pad, 0)])
          out[s:s + n] = np.asarray(self.fn(a, i, self.batch, self.key), np.float64)[:n]
      self.cache.update(zip(todo, map(float, out)))
      self.seconds += time.perf_counter() - t0
    return np.array([self.cache[k] for k in keys])

  def fitness(self, scores) -> np.ndarray:
    """Scores oriented so that larger is better; NaN -> -inf (worst)."""
    f = self.sign * np.asarray(scores, np.float64)
    return np.where(np.isnan(f), -np.inf, f)


class PooledScorer:
  """A pool-relative score as a search fitness: its components are scored (and cached) by one
  :class:`Scorer` each, all from the same key; values rank over every architecture scored so far."""

  def __init__(self, space, name, key, options):
    self.pooled = get_pooled(name)
    self.parts = {c: Scorer(space, c, key, options) for c in self.pooled.components}
    self.sign = 1.0 if self.pooled.higher_is_better else -1.0

  @property
  def cache(self) -> dict:
    return next(iter(self.parts.values())).cache

  @property
  def seconds(self) -> float:
    return sum(p.seconds for p in self.parts.values())

  def __call__(self, archs) -> np.ndarray:
    """The pooled score of ``archs`` over the pool of every architecture scored so far."""
    archs = np.asarray(archs, np.int32)
    for part in self.parts.values():
      part(archs)
    keys = list(self.cache)
    pool = apply_pooled(self.pooled.name, {c: np.array([p.cache[k] for k in keys])
                                           for c, p in self.parts.items()})
    where = dict(zip(keys, pool))
    return np.array([where[a.tobytes()] for a in archs])

  fitness = Scorer.fitness


def make_scorer(space, name, key, options):
  """A :class:`Scorer`, or a :class:`PooledScorer` for a pool-relative score."""
  if name is not None and is_pooled(name):
    return PooledScorer(space, name, key, options)
  return Scorer(space, name, key, options)


def _draw(space, key, n: int) -> np.ndarray:
  if space.num_archs is not None:
    if n > space.num_archs:
      raise JaxnasInputError(f"n={n} exceeds the {space.num_archs} architectures of {space.name}")
    idx = np.sort(np.asarray(jax.random.choice(key, space.num_archs, (n,), replace=False)))
    return np.asarray(space.from_index(idx))
  return np.asarray(space.sample(key, n))


def _arch_record(space, arch, score):
  rec = {"arch": space.decode(arch), "score": score}
  if space.to_index is not None:
    rec["index"] = int(space.to_index(arch))
  return rec


def _check(options):
  if options["n"] < 1:
    raise JaxnasInputError(f"option 'n' must be a positive integer, got {options['n']}")


@register_method("random", defaults=COMMON)
def random_search(space, key, config):
  """Random search: the best of ``n`` uniformly drawn architectures by a proxy (e.g. epsilon).

  Options: ``proxy`` (required), ``n``, ``batch_size`` (0: the proxy's), ``dataset``,
  ``resolution``, ``config`` (module overrides), ``chunk_size``, ``mode`` map|vmap.
  """
  t0 = time.perf_counter()
  _check(config)
  k_draw, k_score = jax.random.split(key)
  scorer = make_scorer(space, config["proxy"], k_score, config)
  archs = _draw(space, k_draw, config["n"])
  scores = scorer(archs)
  fit = scorer.fitness(scores)
  order = np.argsort(-fit, kind="stable")
  best = order[0]
  if not np.isfinite(fit[best]):
    raise FloatingPointError(f"proxy {config['proxy']!r} gave no finite score on {len(archs)} "
                             "architectures")
  trace = [dict(rank=r, **_arch_record(space, archs[i], scores[i]))
           for r, i in enumerate(order[:10])]
  return finish("random", space, archs[best], t0, trace, config, n_scored=len(archs),
                n_nonfinite=int((~np.isfinite(scores)).sum()), scoring_seconds=scorer.seconds)


@register_method("rea", requires=("mutate",),
                 defaults={**COMMON, "population": 64, "sample_size": 10})
def rea(space, key, config):
  """Regularised evolution (aging) with a proxy as the fitness: mutate tournament winners.

  Real et al. AAAI 2019. Options: those of ``random`` plus ``population`` (64) and
  ``sample_size`` (tournament, 10); ``n`` counts every scored architecture (population included).
  """
  t0 = time.perf_counter()
  _check(config)
  pop_n, s_n = config["population"], config["sample_size"]
  if not 1 <= s_n <= pop_n:
    raise JaxnasInputError(f"rea needs 1 <= sample_size <= population, got {s_n} and {pop_n}")
  if pop_n > config["n"]:
    raise JaxnasInputError(f"rea population {pop_n} exceeds the budget n={config['n']}")
  if space.mutate is None:
    raise JaxnasInputError(f"space {space.name!r} has no mutate(); rea cannot run on it")
  k_draw, k_score, k_loop = jax.random.split(key, 3)
  scorer = make_scorer(space, config["proxy"], k_score, config)
  pooled = isinstance(scorer, PooledScorer)
  pop = list(_draw(space, k_draw, pop_n))
  fit = list(scorer.fitness(scorer(np.stack(pop))))
  best_i = int(np.argmax(fit))
  best, best_fit = pop[best_i], fit[best_i]
  mutate = jax.jit(space.mutate)
  trace = [dict(cycle=0, best_score=scorer.sign * best_fit)]
  rng = np.random.default_rng(S.seed_of(k_loop))
  for c in range(1, config["n"] - pop_n + 1):
    picks = rng.choice(len(pop), s_n, replace=False)
    parent = pop[max(picks, key=lambda i: fit[i])]
    child = np.asarray(mutate(jax.random.fold_in(k_loop, c), parent), np.int32)
    f = float(scorer.fitness(scorer(child[None]))[0])
    pop.append(child)
    fit.append(f)
    pop.pop(0)
    fit.pop(0)
    if pooled:  # the pool grew: every member's rank-based fitness may have moved
      fit = list(scorer.fitness(scorer(np.stack(pop))))
      f = fit[-1]
    if f > best_fit:
      best, best_fit = child, f
    trace.append(dict(cycle=c, child_score=scorer.sign * f, best_score=scorer.sign * best_fit))
  if pooled:  # the best of everything scored, by the final pool
    every = np.stack([np.frombuffer(k, np.int32).reshape(best.shape) for k in scorer.cache])
    fits = scorer.fitness(scorer(every))
    best, best_fit = every[int(np.argmax(fits))], float(np.max(fits))
  if not np.isfinite(best_fit):
    raise FloatingPointError(f"proxy {config['proxy']!r} gave no finite score")
  return finish("rea", space, best, t0, trace, config, n_scored=len(scorer.cache),
                best_score=scorer.sign * best_fit, scoring_seconds=scorer.seconds)
