"""Small data files shipped inside the package (read with ``allow_pickle=False``)."""

from __future__ import annotations

import functools
import importlib.resources

import numpy as np


def path(name: str):
  """Filesystem path of a bundled asset."""
  return importlib.resources.files(__name__) / name


@functools.lru_cache(maxsize=None)
def load_npz(name: str) -> dict:
  """Arrays of a bundled ``.npz`` file, as a dict of numpy arrays (cached)."""
  with importlib.resources.as_file(path(name)) as p, np.load(p, allow_pickle=False) as f:
    return {k: f[k] for k in f.files}
