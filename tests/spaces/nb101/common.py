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
