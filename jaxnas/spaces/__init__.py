"""Search spaces: architecture encodings and the Flax networks they denote.

A space is a :class:`SearchSpace` built in its own subpackage: ``jaxnas/spaces/<name>/space.py``
exporting ``SPACE = SearchSpace(name='<name>', ...)`` is found by its folder (no list to edit;
``nb101``, ``nb201`` and ``darts`` are examples).
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import pkgutil

import jax

from jaxnas.errors import JaxnasInputError, unknown
from jaxnas.spaces.base import Network, SearchSpace
from jaxnas.spaces.params import kind_of, kinds, select


def _modules() -> dict:
  """Every space's module path (name -> ``jaxnas.spaces.<name>.space``): each folder holding a
  ``space.py`` (a package with an ``__init__.py``, or a plain folder: a namespace package);
  modules are imported on first use."""
  out = {}
  for info in pkgutil.iter_modules(__path__):
    if info.ispkg and importlib.util.find_spec(f"{__name__}.{info.name}.space") is not None:
      out.setdefault(info.name, f"{__name__}.{info.name}.space")
  for root in __path__:  # folders without __init__.py (pkgutil lists only packages)
    for p in sorted(pathlib.Path(root).glob("*/space.py")):
      name = p.parent.name
      if name.isidentifier() and not name.startswith("_"):
        out.setdefault(name, f"{__name__}.{name}.space")
  return out


def list_spaces() -> list[str]:
  """Names of the registered search spaces whose module is present."""
  return [name for name, mod in _modules().items() if importlib.util.find_spec(mod) is not None]


def get_space(name: str | SearchSpace) -> SearchSpace:
  """The registered :class:`SearchSpace` called ``name`` (e.g. ``'nb201'``); a
  :class:`SearchSpace` passes through unchanged (so callers take either)."""
  if isinstance(name, SearchSpace):
    return name
  mods = _modules()
  if name not in mods or importlib.util.find_spec(mods[name]) is None:
    raise unknown("search space", name, list_spaces())
  space = getattr(importlib.import_module(mods[name]), "SPACE", None)
  if not isinstance(space, SearchSpace):
    raise JaxnasInputError(f"{mods[name]} must define SPACE = SearchSpace(...), found "
                           f"{type(space).__name__}")
  if space.name != name:
    raise JaxnasInputError(f"{mods[name]}.SPACE is named {space.name!r}; its folder says {name!r}")
  space.check()
  return space


def loaded_spaces() -> dict:
  """``{name: SearchSpace}`` of the spaces that load and pass :meth:`SearchSpace.check`; a broken
  one is left out here (so it cannot break the others' listings) and named by ``jaxnas list``."""
  out = {}
  for name in list_spaces():
    try:
      out[name] = get_space(name)
    except (JaxnasInputError, ImportError, AttributeError, TypeError, ValueError):
      continue
  return out


def network(space: str | SearchSpace, arch, **config) -> Network:
  """Binds one architecture (any form ``space.encode`` takes, or a traced array) to a module."""
  sp = get_space(space)
  if not isinstance(arch, jax.Array) or not isinstance(arch, jax.core.Tracer):
    try:
      arch = sp.encode(arch)
    except TypeError:
      pass
  return Network(sp, sp.model(**config), arch)


def sum_probes(intermediates, name: str = "relu_probe"):
  """Sum of every ``name`` value sown by a network: ``'relu_probe'`` (``NB201Net.relu_probe``) or
  ``'tap'`` (``NB201Net.tap``, ``NB101Model.tap``)."""
  total = []

  def visit(tree):
    for k, v in tree.items():
      if k == name:
        total.append(v)
      elif hasattr(v, "items"):
        visit(v)

  visit(intermediates)
  if not total:
    raise ValueError(f"the network sowed no {name} values; set {name} on the module")
  return jax.tree_util.tree_map(lambda *xs: sum(xs[1:], xs[0]), *total)


__all__ = ["SearchSpace", "Network", "get_space", "list_spaces", "loaded_spaces", "network", "sum_probes",
           "kind_of", "kinds", "select"]
