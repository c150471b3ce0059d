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
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

from jaxnas._plugins import import_submodules
from jaxnas.errors import unknown


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

  @property
  def doc(self) -> str:
    """First line of the proxy function's docstring."""
    return (self.fn.__doc__ or "").strip().splitlines()[0] if self.fn.__doc__ else ""


_REGISTRY: dict[str, Proxy] = {}
_SKIP = {"registry", "__init__"}
_loaded = False


def register(name: str, *, needs_data: bool = True, needs_labels: bool = False,
             x64: bool = False, batch_size: Optional[int] = None, config: Optional[dict] = None,
             higher_is_better: bool = True, needs_variables: bool = True,
             cpu_eager: bool = False):
  """Decorator registering ``fn`` under ``name``; a name can be registered only once."""
  def deco(fn):
    if name in _REGISTRY:
      raise ValueError(f"proxy {name!r} is already registered (by {_REGISTRY[name].fn.__module__})")
    _REGISTRY[name] = Proxy(name, fn, needs_data, needs_labels, x64, batch_size,
                            tuple(sorted((config or {}).items())), higher_is_better,
                            needs_variables, cpu_eager)
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
  """Sorted names of all registered proxies."""
  load_all()
  return sorted(_REGISTRY)


def get_proxy(name: str) -> Proxy:
  """The registered :class:`Proxy` called ``name``."""
  load_all()
  if name not in _REGISTRY:
    raise unknown("proxy", name, sorted(_REGISTRY))
  return _REGISTRY[name]
