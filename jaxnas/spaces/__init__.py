"""Search spaces: architecture encodings and the Flax networks they denote.

A space is a :class:`SearchSpace` built in its own module and registered here by name. To add one,
write ``jaxnas/spaces/<name>.py`` exporting ``SPACE = SearchSpace(...)`` and add its name to
``_MODULES`` below.
"""

from __future__ import annotations

import importlib

import jax

from jaxnas.errors import unknown
from jaxnas.spaces.base import Network, SearchSpace
from jaxnas.spaces.params import kind_of, kinds, select

# name -> module path; modules are imported on first use.
_MODULES = {
    "nb201": "jaxnas.spaces.nb201",
    "darts": "jaxnas.spaces.darts",
    "nb101": "jaxnas.spaces.nb101.space",
}


def list_spaces() -> list[str]:
  """Names of the registered search spaces whose module is present."""
  out = []
  for name, mod in _MODULES.items():
    if importlib.util.find_spec(mod) is not None:
      out.append(name)
  return out


def get_space(name: str) -> SearchSpace:
  """The registered :class:`SearchSpace` called ``name`` (e.g. ``'nb201'``)."""
  if name not in list_spaces():
    raise unknown("search space", name, list_spaces())
  return importlib.import_module(_MODULES[name]).SPACE


def network(space: str | SearchSpace, arch, **config) -> Network:
  """Binds one architecture (any form ``space.encode`` takes, or a traced array) to a module."""
  sp = get_space(space) if isinstance(space, str) else space
  if not isinstance(arch, jax.Array) or not isinstance(arch, jax.core.Tracer):
    try:
      arch = sp.encode(arch)
    except TypeError:
      pass
  return Network(sp, sp.model(**config), arch)


def sum_probes(intermediates, name: str = "relu_probe"):
  """Sum of every ``name`` value sown by a network: ``'relu_probe'`` (``NB201Net.relu_probe``) or
  ``'tap'`` (``NB201Net.tap``)."""
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


__all__ = ["SearchSpace", "Network", "get_space", "list_spaces", "network", "sum_probes",
           "kind_of", "kinds", "select"]
