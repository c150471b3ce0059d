"""NAS-Bench-101 ground truth for 300 architectures: CIFAR-10 validation accuracy (108 epochs).

NAS-Bench-Suite-Zero's NB101 records (``nb101_naslib300.csv`` of the shared data; Ying et al.,
"NAS-Bench-101", ICML 2019), bundled as pruned encodings of :mod:`jaxnas.spaces.nb101.space`
(``jaxnas/_assets/nb101.npz``, built by ``experiments/make_truth_assets.py``). The rows are raw
specs that prune to 190 distinct cells (34 rows are the input-to-output cell); each row's accuracy
is one of NB101's three training repeats, so a cell that several rows share gets their mean.
"""

from __future__ import annotations

from jaxnas.benchmarks._by_arch import ArchTruth

METRICS = ("nb101_val",)
SPACE = "nb101"
_TRUTH = ArchTruth("nb101.npz", SPACE, METRICS[0])


def table() -> dict:
  """``{'archs': (300, 56) int8, 'nb101_val': (300,) float64}`` in the shared file's order."""
  return _TRUTH.table


def arch_strs() -> list[str]:
  """The 300 rows' cells as canonical strings (``'digits|ops'``), in file order."""
  return _TRUTH.arch_strs()


def accuracy_of(archs, metric: str = "nb101_val"):
  """Accuracy (%) of NB101 cells (strings, pairs or encodings), the mean over the rows holding
  the cell; NaN for cells outside the 300 rows."""
  return _TRUTH.accuracy_of(archs, metric)
