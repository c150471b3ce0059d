"""DARTS-space ground truth: NAS-Bench-301 surrogate CIFAR-10 validation accuracy of 500 genotypes.

The genotypes and accuracies of NAS-Bench-Suite-Zero's NB301 records (``nb301_naslib500.csv`` of
the shared data; Siems et al., "NAS-Bench-301 and the case for surrogate benchmarks", 2020;
Krishnakumar et al., "NAS-Bench-Suite-Zero", NeurIPS 2022 Datasets and Benchmarks), bundled as
op-index encodings (``jaxnas/_assets/nb301.npz``, built by ``experiments/make_nb301_asset.py``).
The DARTS space has no global index, so an architecture is looked up by its encoding: any form
``jaxnas.spaces.get_space('darts').encode`` accepts (the genotype JSON a scores file holds in
``arch_str``, or op indices). Architectures outside the 500 have no truth (NaN).
"""

from __future__ import annotations

import functools

import numpy as np

from jaxnas import _assets
from jaxnas.errors import unknown

METRICS = ("nb301_val",)
SPACE = "darts"


@functools.lru_cache(maxsize=1)
def table() -> dict:
  """``{'archs': (500, 2, 8, 2) int8, 'nb301_val': (500,) float64}`` in the shared file's order."""
  d = _assets.load_npz("nb301.npz")
  return {"archs": d["archs"], "nb301_val": d["nb301_val"].astype(np.float64)}


@functools.lru_cache(maxsize=1)
def _by_encoding() -> dict:
  t = table()
  return {a.astype(np.int32).tobytes(): float(v) for a, v in zip(t["archs"], t["nb301_val"])}


def genotypes() -> list[str]:
  """The 500 genotypes (canonical JSON strings), in file order."""
  from jaxnas.spaces import get_space
  space = get_space(SPACE)
  return [space.decode(a.astype(np.int32)) for a in table()["archs"]]


def accuracy_of(archs, metric: str = "nb301_val") -> np.ndarray:
  """Accuracy (%) of DARTS architectures (genotype strings or encodings); NaN where unknown."""
  if metric not in METRICS:
    raise unknown("NAS-Bench-301 metric", metric, METRICS)
  from jaxnas.spaces import get_space
  space = get_space(SPACE)
  look = _by_encoding()
  return np.array([look.get(np.asarray(space.encode(a), np.int32).tobytes(), np.nan)
                   for a in archs], np.float64)
