"""Specs and CSV rows shared by the NB101 tests."""

import csv
import functools

from jaxnas.spaces.nb101 import spec as S
from tests.conftest import shared_file

C1, C3, MP = "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3"
#: nasbench README's Inception-like spec (2,694,282 parameters, hash 28cfc787...).
INCEPTION = S.parse([[0, 1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1],
                     [0, 0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1],
                     [0] * 7], ["input", C1, C3, C3, C3, MP, "output"])
#: Its canonical isomorph stored in the dataset (methods-spec §13.2.4).
INCEPTION_CANONICAL = S.parse(
    [[0, 1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0] * 7],
    ["input", C3, C1, MP, C3, C3, "output"])
TRIVIAL = S.parse([[0, 1], [0, 0]], ["input", "output"])
# V=6, 9 edges: projections into 1 and 2, the one into 2 summed with an interior input (1->2,
# widths 3->3 at C=8, 6->5 at C=16: truncated), a truncated input to the max pool (2->3: 3->2 at
# C=8), a conv1x1 and two conv3x3, a 3-way concatenation (8 = 3+3+2, 16 = 6+5+5) plus proj_out
MIXED = S.parse([[0, 1, 1, 0, 0, 1], [0, 0, 1, 0, 0, 1], [0, 0, 0, 1, 0, 1], [0, 0, 0, 0, 1, 0],
                 [0, 0, 0, 0, 0, 1], [0] * 6], ["input", C3, C1, MP, C3, "output"])


def to_masked_layout(params):
  """The space's parameter tree -> :class:`.net.NB101MaskedNet`'s (for ``discrete_params``)."""
  out = {"stem": {"kernel": params["stem"]["conv"]["kernel"],
                  "scale": params["stem"]["bn"]["scale"], "bias": params["stem"]["bn"]["bias"]},
         "head": {"dense": dict(params["classifier"])}}
  for name, p in params.items():
    if name.startswith("cell_"):
      cell, op = name.rsplit("_", 1)
      d = out.setdefault(cell, {})
      d[f"{op}_kernel"] = p["conv"]["kernel"]
      d[f"{op}_scale"], d[f"{op}_bias"] = p["bn"]["scale"], p["bn"]["bias"]
  return out


@functools.lru_cache(maxsize=1)
def _rows():
  with open(shared_file("nb101_naslib300.csv")) as f:
    return tuple(csv.DictReader(f))


def csv_rows():
  """The 300 CSV rows (skips the test when the shared folder is absent)."""
  return _rows()


def csv_spec(i: int) -> S.Spec:
  """Raw (unpruned) spec of CSV row ``i`` (0-based; the spec's 'row 1' is i=0)."""
  r = csv_rows()[i]
  return S.parse(r["matrix"], r["ops"])
