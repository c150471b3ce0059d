"""Auto-discovery shared by the proxy and search-method registries: every module of a package
registers itself on import, so adding one means adding a file."""

import importlib
import pkgutil


def import_submodules(package: str, skip=()) -> None:
  """Imports every module of ``package`` except ``skip`` and private (``_``-prefixed) ones."""
  pkg = importlib.import_module(package)
  for m in pkgutil.iter_modules(pkg.__path__):
    if m.name not in skip and not m.name.startswith("_"):
      importlib.import_module(f"{package}.{m.name}")
