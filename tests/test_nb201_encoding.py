"""Encodings: arch string <-> op indices <-> benchmark index, against the shared table."""

import csv

import numpy as np
import pytest

from jaxnas.errors import JaxnasInputError
from jaxnas.spaces import get_space, nb201
from tests.conftest import shared_file


def test_round_trip_all_15625():
  archs = nb201.all_archs()
  assert archs.shape == (15625, 6)
  assert len({tuple(a) for a in archs}) == 15625
  idx = nb201.to_index(archs)
  np.testing.assert_array_equal(idx, np.arange(15625))
  for i in range(15625):
    s = nb201.decode(archs[i])
    a = nb201.parse(s)
    np.testing.assert_array_equal(a, archs[i])
    assert nb201.to_index(a) == i
    assert nb201.encode(i).tolist() == a.tolist() == nb201.encode(str(i)).tolist()


def test_index_and_string_match_shared_table():
  path = shared_file("nb201_test200.csv")
  with open(path) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 15625
  for r in rows:
    i = int(r["index"])
    assert nb201.decode(nb201.from_index(i)) == r["arch_str"]
    assert nb201.to_index(nb201.parse(r["arch_str"])) == i


def test_known_architectures():
  s = "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|"
  assert nb201.encode(s).tolist() == [3, 4, 3, 2, 3, 0]
  assert nb201.to_index(nb201.encode(s)) == 180
  # edge order inside a node does not matter when parsing
  t = "|nor_conv_3x3~0|+|nor_conv_3x3~1|avg_pool_3x3~0|+|none~2|nor_conv_1x1~0|nor_conv_3x3~1|"
  assert nb201.encode(t).tolist() == [3, 4, 3, 2, 3, 0]


@pytest.mark.parametrize("bad, fragment", [
    ("|foo~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'foo'"),
    ("|none~0|+|none~0|none~1|", "expected 3 nodes"),
    ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "node 2 needs exactly one edge"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|", "node 3 needs exactly one edge"),
    ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "must look like"),
    ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "must be 'op~input'"),
    ("", "expected 3 nodes"),
])
def test_bad_strings_name_the_problem(bad, fragment):
  with pytest.raises(JaxnasInputError, match=fragment):
    nb201.encode(bad)


@pytest.mark.parametrize("bad, fragment", [
    (15625, "out of range; allowed: 0..15624"),
    (-1, "out of range"),
    ("99999", "out of range"),
    ([0, 1, 2], "must be 6 integer op indices"),
    ([0, 1, 2, 3, 4, 5], "must be in 0..4"),
    ([0.0] * 6, "integer op indices"),
    (True, "must be 6 integer"),
])
def test_bad_indices_and_arrays(bad, fragment):
  with pytest.raises(JaxnasInputError, match=fragment):
    nb201.encode(bad)


def test_space_registry_and_sampling(key):
  sp = get_space("nb201")
  assert sp.num_archs == 15625 and sp.arch_shape == (6,)
  a = np.asarray(sp.sample(key, 100))
  assert a.shape == (100, 6) and a.min() >= 0 and a.max() <= 4
  np.testing.assert_array_equal(a, np.asarray(sp.sample(key, 100)))  # deterministic
  m = np.asarray(sp.mutate(key, a[0]))
  assert (m != a[0]).sum() == 1
  with pytest.raises(JaxnasInputError, match="unknown search space 'nope'; allowed: .*nb201"):
    get_space("nope")
