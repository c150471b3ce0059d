"""Training-free search methods, registered by name (one module per method or small family).

A method is a pure-ish function ``fn(space, key, config) -> SearchResult`` of a
:class:`jaxnas.spaces.SearchSpace`, a ``jax.random`` key (every random choice flows from it) and a
dict of options; it returns the chosen architecture, its wall time and a search trace
(:class:`jaxnas.search.result.SearchResult`). Each method declares its options and their defaults
when it registers; :func:`search` resolves user options against them (unknown names and values of
the wrong type raise :class:`jaxnas.errors.JaxnasInputError`).

Example:
  >>> from jaxnas import search
  >>> res = search.search('random', 'nb201', seed=0, proxy='params', n=100)  # doctest: +SKIP
  >>> res.arch_str  # doctest: +SKIP

Methods: ``nasi`` (Shu et al. 2022), ``freedarts`` / ``freenas`` and the ``snip`` / ``grasp``
criteria (Zhang et al., arXiv 2106.11542), ``hnas`` (Shu et al. 2022, NeurIPS), ``tenas`` (Chen et
al. 2021), ``random`` and ``rea`` (proxy-guided random search and regularised evolution).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax

from jaxnas._plugins import import_submodules
from jaxnas.engine import memory
from jaxnas.errors import JaxnasInputError, unknown
from jaxnas.search.result import SearchResult, to_json, write_json


class Method(NamedTuple):
  """A registered search method.

  Attributes:
    name: registry (and CLI) name.
    fn: ``fn(space, key, config) -> SearchResult``; ``config`` holds every option, resolved.
    requires: what it needs from a search space, as names of
      :meth:`jaxnas.spaces.SearchSpace.capabilities` (``'supernet'``, ``'enumerable'``,
      ``'mutate'``, ``'benchmark'``, module fields such as ``'relu_probe'``); a space lacking
      one is refused by :func:`search` with the missing names.
    defaults: ``((option, default), ...)`` sorted by option name.
  """
  name: str
  fn: Callable
  requires: tuple = ()
  defaults: tuple = ()

  def missing(self, space) -> list:
    """The capabilities this method needs that ``space`` lacks (sorted; empty: supported)."""
    return sorted(set(self.requires) - space.capabilities())

  @property
  def spaces(self) -> tuple:
    """Names of the registered spaces that have everything this method requires."""
    from jaxnas.spaces import loaded_spaces
    return tuple(n for n, sp in loaded_spaces().items() if not self.missing(sp))

  @property
  def doc(self) -> str:
    """First line of the method function's docstring."""
    d = (self.fn.__doc__ or "").strip()
    return d.splitlines()[0] if d else ""

  def options(self, config=None) -> dict:
    """The method's options: its defaults updated with ``config`` (checked and coerced)."""
    return resolve_options(self, config)


_REGISTRY: dict[str, Method] = {}
_SKIP = {"result", "gp"}
_loaded = False


def register_method(name: str, *, requires=(), defaults=None):
  """Decorator registering ``fn(space, key, config)`` under ``name`` (names are unique);
  ``requires``: the space capabilities it needs (:attr:`Method.requires`)."""
  def deco(fn):
    if name in _REGISTRY:
      raise ValueError(f"search method {name!r} is already registered "
                       f"(by {_REGISTRY[name].fn.__module__})")
    _REGISTRY[name] = Method(name, fn, tuple(requires), tuple(sorted((defaults or {}).items())))
    return fn
  return deco


def check_supported(method: Method, space) -> None:
  """Raises :class:`JaxnasInputError` naming the method, the space and what the space lacks,
  with the spaces that have it, when ``method`` cannot run on ``space``."""
  missing = method.missing(space)
  if missing:
    raise JaxnasInputError(
        f"search method {method.name!r} does not support space {space.name!r}: it needs "
        f"{', '.join(missing)}, which {space.name!r} lacks; spaces that have it: "
        f"{', '.join(method.spaces) or '(none)'}")


def load_all() -> None:
  """Imports every method module of this package (each registers itself)."""
  global _loaded
  if _loaded:
    return
  import_submodules("jaxnas.search", _SKIP)
  _loaded = True


def list_methods() -> list[str]:
  """Sorted names of all registered search methods."""
  load_all()
  return sorted(_REGISTRY)


def get_method(name: str) -> Method:
  """The registered :class:`Method` called ``name``."""
  load_all()
  if name not in _REGISTRY:
    raise unknown("search method", name, sorted(_REGISTRY))
  return _REGISTRY[name]


def _coerce(method: str, key: str, value, default):
  """``value`` converted to the type of ``default`` (strings from the command line included)."""
  where = f"option {key!r} of search method {method!r}"
  if isinstance(default, bool):
    if isinstance(value, bool):
      return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
      return value.lower() in ("true", "1", "yes")
    raise JaxnasInputError(f"{where} must be true or false, got {value!r}")
  if isinstance(default, int) and not isinstance(default, bool):
    try:
      if isinstance(value, bool) or float(value) != int(float(value)):
        raise ValueError
      return int(float(value))
    except (TypeError, ValueError):
      raise JaxnasInputError(f"{where} must be an integer, got {value!r}") from None
  if isinstance(default, float):
    try:
      if isinstance(value, bool):
        raise ValueError
      return float(value)
    except (TypeError, ValueError):
      raise JaxnasInputError(f"{where} must be a number, got {value!r}") from None
  if isinstance(default, dict):
    if not isinstance(value, dict):
      raise JaxnasInputError(f"{where} must be a dict, got {value!r}")
    return dict(value)
  if default is None or isinstance(default, str):
    if value is not None and not isinstance(value, str):
      raise JaxnasInputError(f"{where} must be a string, got {value!r}")
    return value
  return value


def resolve_options(method: Method, config=None) -> dict:
  """``method``'s defaults updated with ``config``; unknown options raise a named error."""
  defaults = dict(method.defaults)
  out = dict(defaults)
  for k, v in (config or {}).items():
    if k not in defaults:
      raise unknown(f"option of search method {method.name!r}:", k, sorted(defaults) or ["(none)"])
    out[k] = _coerce(method.name, k, v, defaults[k])
  return out


def search(method: str, space, seed: int = 0, **options) -> SearchResult:
  """Runs the search method ``method`` on ``space`` (name or object) with ``jax.random.key(seed)``.

  ``options`` override the method's defaults (see ``get_method(method).defaults``).
  """
  from jaxnas.spaces import get_space
  m = get_method(method)
  sp = get_space(space)
  check_supported(m, sp)
  if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
    raise JaxnasInputError(f"seed must be a non-negative integer, got {seed!r}")
  opts = resolve_options(m, options)
  memory.release_compiled_near_map_limit()   # a process at its memory-map limit dies in XLA's
  res = m.fn(sp, jax.random.key(seed), opts)  # next compilation (jaxnas.engine.memory)
  return res._replace(seed=seed)


__all__ = ["Method", "SearchResult", "check_supported", "get_method", "list_methods", "register_method",
           "resolve_options", "search", "to_json", "write_json"]
