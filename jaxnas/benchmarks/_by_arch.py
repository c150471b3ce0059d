"""Ground truth looked up by architecture encoding, for spaces without a global index.

A table is a bundled ``.npz`` with ``archs`` (the space's encodings, in the shared file's row
order) and one accuracy column; an architecture is found by its canonical encoding (any form the
space's ``encode`` accepts). Rows whose architectures coincide (NB101's raw specs that prune to
the same cell) are averaged; architectures outside the table have no truth (NaN).
"""

from __future__ import annotations

import functools

import numpy as np

from jaxnas import _assets
from jaxnas.errors import unknown


class ArchTruth:
  """The truth table ``asset`` (column ``metric``) of the space ``space``."""

  def __init__(self, asset: str, space: str, metric: str):
    self.asset, self.space, self.metric = asset, space, metric

  @functools.cached_property
  def table(self) -> dict:
    """``{'archs': (n, *arch_shape) int8, metric: (n,) float64}`` in file order."""
    d = _assets.load_npz(self.asset)
    return {"archs": d["archs"], self.metric: d[self.metric].astype(np.float64)}

  @functools.cached_property
  def _by_encoding(self) -> dict:
    groups: dict = {}
    for a, v in zip(self.table["archs"], self.table[self.metric]):
      groups.setdefault(a.astype(np.int32).tobytes(), []).append(float(v))
    return {k: float(np.mean(v)) for k, v in groups.items()}

  def arch_strs(self) -> list[str]:
    """The table's architectures as canonical strings, in file order."""
    from jaxnas.spaces import get_space
    sp = get_space(self.space)
    return [sp.decode(a.astype(np.int32)) for a in self.table["archs"]]

  def accuracy_of(self, archs, metric: str | None = None) -> np.ndarray:
    """Accuracy (%) of architectures (strings or encodings); NaN where unknown."""
    metric = metric or self.metric
    if metric != self.metric:
      raise unknown(f"{self.space} benchmark metric", metric, [self.metric])
    from jaxnas.spaces import get_space
    sp = get_space(self.space)
    look = self._by_encoding
    return np.array([look.get(np.asarray(sp.encode(a), np.int32).tobytes(), np.nan)
                     for a in archs], np.float64)
