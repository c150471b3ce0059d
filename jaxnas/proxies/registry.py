"""Proxies registered by name.

A proxy is a pure function ``fn(net, variables, batch, key) -> scalar`` of a bound network
(:class:`jaxnas.spaces.Network`), its Flax variables (initialised by the caller with the space's
default initialiser), a minibatch (:class:`jaxnas.data.Batch`) and a PRNG key. It must be jit- and
vmap-safe in ``net.arch`` (the architecture is traced), and deterministic given its inputs.

Register one with the decorator; every module in ``jaxnas/proxies/`` is imported on first lookup,
so adding a proxy means adding one file (and its test)::

    @register("my_proxy", needs_labels=True)
    def my_proxy(net, variables, batch, key):
      ...

A *pool-relative* score (:class:`Pooled`) has no per-architecture form: it combines registered
proxies (its components) over a set of candidates, e.g. AZ-NAS' sum of log-ranks, so one
architecture's value depends on which others are in the set. Register the combination; the engine
scores and stores the components, and whoever holds the set (``jaxnas score``, ``correlate``, a
search) applies it over that set (:func:`expand`, :func:`apply_pooled`, :func:`with_pooled`)::

    @register_pooled("my_pool", components=("nwot", "synflow"))
    def my_pool(scores):            # {component: (n,) float64} -> (n,)
      ...
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple, Optional

import numpy as np

from jaxnas._plugins import import_submodules
from jaxnas.errors import JaxnasInputError, unknown


class Proxy(NamedTuple):
  """A registered proxy and what it needs.

  Attributes:
    name: registry (and CLI) name.
    fn: ``fn(net, variables, batch, key) -> scalar``.
    needs_data: reads ``batch.x`` (False: data-free, e.g. ``params``, ``synflow``).
    needs_labels: reads ``batch.y``.
    x64: must be traced and run with 64-bit floats enabled (``jaxnas._compat.enable_x64``).
    batch_size: the minibatch size the defining paper uses, or None for the caller's default.
    config: overrides of the space's module configuration, e.g. ``{'num_classes': 1}``.
    higher_is_better: orientation of the score.
    needs_variables: uses the caller's initialised variables (False: the proxy ignores them, e.g.
      ``params`` or a proxy with its own initialisation); the caller may then pass None.
    cpu_eager: ``mode='auto'`` scores it with the ``'eager'`` executor on CPU (for networks of
      at least ``jaxnas.engine.scoring.EAGER_MIN_FLOPS``): set where that was measured faster
      than ``'map'`` (experiments/bench_executors.py; gradient proxies through the network).
    requires: network capabilities the proxy uses beyond running the network (hooks such as
      ``relu_probe``, ``tap``, ``gates``, sown ``features``; see
      :meth:`jaxnas.spaces.SearchSpace.capabilities`); the keys of ``config`` are required too.
      Selecting the proxy on a space that lacks one is a :class:`JaxnasInputError` naming the
      proxy, the space and what is missing (:func:`check_supported`), before any tracing.
    shares: quantities the proxy computes through :func:`jaxnas.proxies.joint.shared` (e.g.
      ``'loss_grad'``, the cross-entropy gradient): proxies sharing one are scored in one pass
      that computes it once (:func:`jaxnas.proxies.joint.plan`).
    members: for a joint proxy (:func:`jaxnas.proxies.joint.joint`), the names of the proxies
      whose scores its ``fn`` returns as a vector; empty for a registered proxy.
  """
  name: str
  fn: Callable
  needs_data: bool = True
  needs_labels: bool = False
  x64: bool = False
  batch_size: Optional[int] = None
  config: tuple = ()
  higher_is_better: bool = True
  needs_variables: bool = True
  cpu_eager: bool = False
  requires: tuple = ()
  shares: tuple = ()
  members: tuple = ()

  @property
  def needs(self) -> frozenset:
    """Every capability the proxy needs: ``requires`` and its ``config`` keys."""
    return frozenset(self.requires) | frozenset(k for k, _ in self.config)

  @property
  def doc(self) -> str:
    """First line of the proxy function's docstring."""
    return (self.fn.__doc__ or "").strip().splitlines()[0] if self.fn.__doc__ else ""


class Pooled(NamedTuple):
  """A pool-relative score: ``combine`` of its component proxies' scores over a set.

  Attributes:
    name: registry (and CLI) name; shares the namespace of proxies.
    components: names of the registered proxies it combines (scored and stored per architecture).
    combine: ``combine({component: (n,) float64}) -> (n,)``, over the same ``n`` candidates in
      the same order; must accept non-finite component values.
    higher_is_better: orientation of the combined score.
  """
  name: str
  components: tuple
  combine: Callable
  higher_is_better: bool = True

  @property
  def doc(self) -> str:
    """First line of the combination's docstring, marked pool-relative."""
    d = (self.combine.__doc__ or "").strip().splitlines()
    return "[pool-relative] " + (d[0] if d else "")


_REGISTRY: dict[str, Proxy] = {}
_POOLED: dict[str, Pooled] = {}
_SKIP = {"registry", "__init__"}
_loaded = False


def register(name: str, *, needs_data: bool = True, needs_labels: bool = False,
             x64: bool = False, batch_size: Optional[int] = None, config: Optional[dict] = None,
             higher_is_better: bool = True, needs_variables: bool = True,
             cpu_eager: bool = False, requires=(), shares=()):
  """Decorator registering ``fn`` under ``name``; a name can be registered only once."""
  def deco(fn):
    _check_free(name)
    _REGISTRY[name] = Proxy(name, fn, needs_data, needs_labels, x64, batch_size,
                            tuple(sorted((config or {}).items())), higher_is_better,
                            needs_variables, cpu_eager, tuple(sorted(requires)),
                            tuple(sorted(shares)))
    return fn
  return deco


def _check_free(name: str) -> None:
  if name in _REGISTRY:
    raise ValueError(f"proxy {name!r} is already registered (by {_REGISTRY[name].fn.__module__})")
  if name in _POOLED:
    raise ValueError(f"{name!r} is already registered as a pool-relative score (by "
                     f"{_POOLED[name].combine.__module__})")


def register_pooled(name: str, *, components, higher_is_better: bool = True):
  """Decorator registering ``combine(scores) -> (n,)`` as the pool-relative score ``name``."""
  components = tuple(components)
  if not components or len(set(components)) != len(components):
    raise ValueError(f"pooled score {name!r} needs distinct components, got {components}")

  def deco(fn):
    _check_free(name)
    _POOLED[name] = Pooled(name, components, fn, higher_is_better)
    return fn
  return deco


def load_all() -> None:
  """Imports every proxy module of this package (each registers itself)."""
  global _loaded
  if _loaded:
    return
  import_submodules("jaxnas.proxies", _SKIP)
  _loaded = True


def list_proxies() -> list[str]:
  """Sorted names of all registered (per-architecture) proxies."""
  load_all()
  return sorted(_REGISTRY)


def list_pooled() -> list[str]:
  """Sorted names of all registered pool-relative scores."""
  load_all()
  return sorted(_POOLED)


def get_proxy(name: str) -> Proxy:
  """The registered :class:`Proxy` called ``name``."""
  load_all()
  if name in _POOLED:
    raise JaxnasInputError(
        f"{name!r} is pool-relative (a combination of {', '.join(_POOLED[name].components)} over "
        f"a set of architectures), not a per-architecture proxy: score its components, then "
        f"apply it over the set (jaxnas.proxies.expand / apply_pooled; `jaxnas score --proxies "
        f"{name}` does both)")
  if name not in _REGISTRY:
    raise unknown("proxy", name, sorted(_REGISTRY) + sorted(_POOLED))
  return _REGISTRY[name]


def get_pooled(name: str) -> Pooled:
  """The registered :class:`Pooled` score called ``name``."""
  load_all()
  if name not in _POOLED:
    raise unknown("pool-relative score", name, sorted(_POOLED))
  return _POOLED[name]


def is_pooled(name: str) -> bool:
  """Whether ``name`` is a registered pool-relative score."""
  load_all()
  return name in _POOLED


def expand(names) -> list[str]:
  """The per-architecture proxies that ``names`` need: each proxy itself, each pool-relative score
  its components; in order, each once. Unknown names raise (listing both kinds)."""
  out: list[str] = []
  for name in names:
    for p in (get_pooled(name).components if is_pooled(name) else (get_proxy(name).name,)):
      get_proxy(p)
      if p not in out:
        out.append(p)
  return out


def apply_pooled(name: str, scores: Mapping[str, np.ndarray]) -> np.ndarray:
  """The pool-relative score ``name`` of the ``n`` candidates whose component scores are given.

  ``scores`` maps (at least) each component to its ``(n,)`` values over the same candidates, in the
  same order; the set of those candidates is the pool.
  """
  pooled = get_pooled(name)
  missing = [c for c in pooled.components if c not in scores]
  if missing:
    raise JaxnasInputError(f"{name!r} needs the scores of {', '.join(missing)} (its components: "
                           f"{', '.join(pooled.components)}); got {', '.join(sorted(scores))}")
  cols = {c: np.asarray(scores[c], np.float64) for c in pooled.components}
  sizes = {c: v.shape for c, v in cols.items()}
  if len(set(sizes.values())) != 1 or len(next(iter(sizes.values()))) != 1:
    raise JaxnasInputError(f"{name!r}: component scores must be 1-D over the same candidates, "
                           f"got shapes {sizes}")
  return np.asarray(pooled.combine(cols), np.float64)


def with_pooled(scores: Mapping[str, tuple], names=None) -> dict:
  """Adds pool-relative scores to indexed per-architecture scores ``{proxy: (ids, values)}``.

  For each of ``names`` (default: every registered pooled score whose components are all
  present) the pool is the set of ids that every component scored; the result holds
  ``(ids, values)`` over that set (sorted ids) beside the given entries.
  """
  out = dict(scores)
  chosen = list_pooled() if names is None else list(names)
  for name in chosen:
    comps = get_pooled(name).components
    if names is None and not all(c in scores for c in comps):
      continue
    missing = [c for c in comps if c not in scores]
    if missing:
      raise JaxnasInputError(f"{name!r} needs scores of {', '.join(missing)}; the file has "
                             f"{', '.join(sorted(scores))}")
    maps = [dict(zip(np.asarray(scores[c][0]).tolist(), np.asarray(scores[c][1]).tolist()))
            for c in comps]
    ids = sorted(set(maps[0]).intersection(*maps[1:]))
    if not ids:
      raise JaxnasInputError(f"{name!r}: its components share no architecture")
    out[name] = (np.asarray(ids), apply_pooled(name, {c: [m[i] for i in ids]
                                                      for c, m in zip(comps, maps)}))
  return out


def missing_capabilities(name, space) -> list[str]:
  """Capabilities the proxy ``name`` (a name, a pool-relative score's name: its components, or a
  :class:`Proxy`) needs that ``space`` (a :class:`jaxnas.spaces.SearchSpace` or its name) lacks,
  sorted."""
  have = _space(space).capabilities()
  if isinstance(name, Proxy):
    return sorted(name.needs - have)
  need = set()
  for n in expand([name]):
    need |= get_proxy(n).needs
  return sorted(need - have)


def _space(space):
  """:func:`jaxnas.spaces.get_space` (a name or a space), imported late: spaces import this
  registry's users."""
  from jaxnas.spaces import get_space
  return get_space(space)


def supported_proxies(space) -> list[str]:
  """Names of the proxies and pool-relative scores that run on ``space`` (a space or its name)."""
  space = _space(space)
  return [n for n in list_proxies() + list_pooled() if not missing_capabilities(n, space)]


def check_supported(names, space) -> None:
  """Raises :class:`JaxnasInputError` if a proxy of ``names`` (names or :class:`Proxy` objects)
  needs what ``space`` lacks, naming the proxy, the space, the missing capabilities and the
  proxies that do run there."""
  space = _space(space)
  for name in names:
    miss = missing_capabilities(name, space)
    if miss:
      name = name.name if isinstance(name, Proxy) else name
      ok = supported_proxies(space)
      raise JaxnasInputError(
          f"proxy {name!r} needs {', '.join(repr(m) for m in miss)} from the network, which "
          f"the {space.name!r} space does not provide; proxies that run on {space.name!r}: "
          f"{', '.join(ok)}")
