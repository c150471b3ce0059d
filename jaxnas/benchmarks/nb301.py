"""DARTS-space ground truth: NAS-Bench-301 surrogate CIFAR-10 validation accuracy of 500 genotypes.

The genotypes and accuracies of NAS-Bench-Suite-Zero's NB301 records (``nb301_naslib500.csv`` of
the shared data; Siems et al., "NAS-Bench-301 and the case for surrogate benchmarks", 2020;
Krishnakumar et al., "NAS-Bench-Suite-Zero", NeurIPS 2022 Datasets and Benchmarks), bundled as
op-index encodings (``jaxnas/_assets/nb301.npz``, built by ``experiments/make_truth_assets.py``).
The DARTS space has no global index, so an architecture is looked up by its encoding: any form
``jaxnas.spaces.get_space('darts').encode`` accepts (the genotype JSON a scores file holds in
``arch_str``, or op indices). Architectures outside the 500 have no truth (NaN).
"""

from __future__ import annotations

from jaxnas.benchmarks._by_arch import ArchTruth

METRICS = ("nb301_val",)
SPACE = "darts"
_TRUTH = ArchTruth("nb301.npz", SPACE, METRICS[0])


def table() -> dict:
  """``{'archs': (500, 2, 8, 2) int8, 'nb301_val': (500,) float64}`` in the shared file's order."""
  return _TRUTH.table


def genotypes() -> list[str]:
  """The 500 genotypes (canonical JSON strings), in file order."""
  return _TRUTH.arch_strs()


def accuracy_of(archs, metric: str = "nb301_val"):
  """Accuracy (%) of DARTS architectures (genotype strings or encodings); NaN where unknown."""
  return _TRUTH.accuracy_of(archs, metric)
