"""Cascade search: proxies from cheapest to dearest, each keeping the best of what the last kept.

A *cascade* is a list of stages ``proxy[@resolution]:keep``. The candidates (the whole space, or
``n`` uniform draws) are scored by the first stage's proxy and its best ``keep`` survive (ties at
the cut survive too, so the result never depends on the order of equal scores); each further
stage scores only the survivors of the one before. Cheap proxies see many architectures and dear
ones few, so the cost is dominated by whichever stage has ``(candidates x seconds per
architecture)`` largest. The default, ``params:300,synflow@8:10,zen:1``:

1. ``params``: the parameter count, exact and analytic (microseconds per architecture): the
   whole NB201 space in a fraction of a second; the 300 largest (465 with ties) survive;
2. ``synflow@8``: SynFlow (Tanaka et al. 2020) on an 8x8 all-ones input (its ranking of NB201 at
   8x8 agrees with 32x32 at Spearman 0.995 with identical top 10 on 1,024 architectures, at a
   quarter of the cost); the 10 best survive;
3. ``zen``: Zen-score (Lin et al. 2021) picks one of the 10.

Without queries (``queries=0``) the search is training-free: it returns the best survivor of the
last stage. With ``queries=q > 0`` (the hybrid setting of HNAS / RoBoT: a budget of benchmark
accuracies, by default the 12-epoch validation accuracy ``cifar10valid_val12``, never the
200-epoch figures) the last stage's best ``q`` survivors are looked up and the best *observed*
one is returned; ``queries`` in the result counts the lookups.

Every stage uses :class:`jaxnas.search.sampling.Scorer` (one compiled function per proxy, each
network initialised from ``fold_in(key_i, index)``, ``key_i`` the search key folded with the
stage number), so a search is deterministic given its seed. Pool-relative scores (``aznas``,
``ensemble_v2``) rank over the stage's candidates.
"""

from __future__ import annotations

import re
import time
from typing import NamedTuple

import jax
import numpy as np

from jaxnas.errors import JaxnasInputError, unknown
from jaxnas.proxies import check_supported, is_pooled, list_pooled, list_proxies
from jaxnas.search import register_method
from jaxnas.search import sampling as SM
from jaxnas.search.result import finish

DEFAULT_STAGES = "params:300,synflow@8:10,zen:1"
DEFAULTS = {**{k: v for k, v in SM.COMMON.items() if k != "proxy"}, "stages": DEFAULT_STAGES,
            "n": 0, "queries": 0, "observed": "cifar10valid_val12", "mode": "auto",
            "chunk_size": 64}
_STAGE = re.compile(r"^\s*([A-Za-z0-9_]+)(?:@(\d+))?:(\d+)\s*$")


class Stage(NamedTuple):
  """One stage: score the candidates with ``proxy`` (inputs at ``resolution``, None: the
  search's), keep the best ``keep`` (and any tied with the last kept)."""
  proxy: str
  resolution: int | None
  keep: int


def parse_stages(spec: str) -> list[Stage]:
  """``'params:300,synflow@8:10,zen:1'`` -> stages; a malformed stage or unknown proxy raises
  :class:`JaxnasInputError` naming it."""
  if not isinstance(spec, str) or not spec.strip():
    raise JaxnasInputError(f"option 'stages' must be 'proxy[@resolution]:keep,...' "
                           f"(e.g. {DEFAULT_STAGES!r}), got {spec!r}")
  known = set(list_proxies()) | set(list_pooled())
  stages = []
  for part in spec.split(","):
    m = _STAGE.match(part)
    if not m:
      raise JaxnasInputError(f"stage {part!r} of option 'stages' is not 'proxy[@resolution]:keep' "
                             f"(e.g. 'synflow@8:10')")
    name, res, keep = m.group(1), m.group(2), int(m.group(3))
    if name not in known:
      raise unknown("proxy in option 'stages':", name, sorted(known))
    if keep < 1:
      raise JaxnasInputError(f"stage {part.strip()!r}: keep must be at least 1, got {keep}")
    if res is not None and (int(res) < 1 or 32 % int(res)):
      raise JaxnasInputError(f"stage {part.strip()!r}: resolution must divide 32, got {res}")
    stages.append(Stage(name, None if res is None else int(res), keep))
  return stages


def keep_best(fitness, keep: int) -> np.ndarray:
  """Positions of the ``keep`` largest ``fitness`` values, best first, plus any tied with the
  last one kept (stable: equal values keep their input order)."""
  fitness = np.asarray(fitness, np.float64)
  order = np.argsort(-fitness, kind="stable")
  if keep >= len(order):
    return order
  cut = fitness[order[keep - 1]]
  n = keep
  while n < len(order) and fitness[order[n]] == cut:
    n += 1
  return order[:n]


def _candidates(space, key, n: int) -> np.ndarray:
  if n == 0:
    if space.num_archs is None:
      raise JaxnasInputError(f"space {space.name!r} cannot be enumerated: give n > 0 "
                             "(uniform draws)")
    return np.asarray(space.from_index(np.arange(space.num_archs)))
  if n < 0:
    raise JaxnasInputError(f"option 'n' must be 0 (the whole space) or positive, got {n}")
  return SM._draw(space, key, n)


@register_method("cascade", defaults=DEFAULTS)
def cascade(space, key, config):
  """Cascade: score candidates with proxies cheapest first, each stage keeping its best few.

  Options: ``stages`` (``proxy[@resolution]:keep,...``, default ``params:300,synflow@8:10,zen:1``),
  ``n`` (0: the whole space, else uniform draws), ``queries`` (0: training-free; q: look up
  ``observed`` for the last stage's best q and return the best observed), ``observed``
  (benchmark metric, default ``cifar10valid_val12``), and per-stage scoring options of
  ``random``: ``batch_size`` (0: each proxy's paper batch), ``dataset``, ``resolution``
  (default for stages without ``@``), ``config``, ``chunk_size``, ``mode``.
  """
  t0 = time.perf_counter()
  stages = parse_stages(config["stages"])
  check_supported([st.proxy for st in stages], space)   # every stage, before any is scored
  q = config["queries"]
  if q < 0:
    raise JaxnasInputError(f"option 'queries' must be 0 or positive, got {q}")
  if q and space.accuracy is None:
    raise JaxnasInputError(f"queries={q} looks up a benchmark; space {space.name!r} has none")
  if q and config["observed"] not in space.metrics:
    raise unknown(f"{space.name} benchmark metric", config["observed"], space.metrics)
  if q and stages[-1].keep < q:
    raise JaxnasInputError(f"queries={q} exceeds what the last stage keeps "
                           f"({stages[-1].keep}): raise its keep to at least {q}")
  k_draw, k_score = jax.random.split(key)
  archs = _candidates(space, k_draw, config["n"])
  trace, scored = [], 0
  for i, st in enumerate(stages):
    t1 = time.perf_counter()
    opts = dict(config, resolution=st.resolution or config["resolution"])
    scorer = SM.make_scorer(space, st.proxy, jax.random.fold_in(k_score, i), opts)
    scores = scorer(archs)
    fit = scorer.fitness(scores)
    if not np.isfinite(fit).any():
      raise FloatingPointError(f"stage {i} ({st.proxy}) gave no finite score on {len(archs)} "
                               "architectures")
    kept = keep_best(fit, st.keep)
    scored += len(archs)
    trace.append(dict(stage=i, proxy=st.proxy, resolution=opts["resolution"],
                      candidates=len(archs), kept=len(kept),
                      pooled=bool(is_pooled(st.proxy)), seconds=time.perf_counter() - t1,
                      best=[SM._arch_record(space, archs[j], scores[j]) for j in kept[:5]]))
    archs = archs[kept]
  queried = []
  if q:
    observed = space.accuracy(archs[:q], config["observed"])
    for a, acc in zip(archs[:q], observed):
      who = ({"index": int(space.to_index(a))} if space.to_index is not None
             else {"arch": space.decode(a)})
      queried.append(dict(who, observed=float(acc)))
    if not np.isfinite(observed).any():
      raise JaxnasInputError(f"none of the {len(observed)} queried architectures is in the "
                             f"{space.name} benchmark ({config['observed']})")
    best = int(np.nanargmax(observed))
    arch = archs[best]
    trace.append(dict(stage="queries", observed_metric=config["observed"], queried=queried))
  else:
    arch = archs[0]
  return finish("cascade", space, arch, t0, trace, config, queries=len(queried),
                n_scored=scored,
                stage_seconds=[r["seconds"] for r in trace if "seconds" in r])
