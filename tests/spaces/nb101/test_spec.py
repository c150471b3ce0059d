"""NB101 specs: parsing errors, pruning, validity, graph hash, vertex channels, padded encoding
(methods-spec §13.1.3, §13.2, §13.4)."""

import collections

import numpy as np
import pytest

from jaxnas.errors import JaxnasInputError
from jaxnas.spaces.nb101 import spec as S
from tests.spaces.nb101.common import (C1, C3, INCEPTION, INCEPTION_CANONICAL, MP, TRIVIAL,
                                       csv_rows, csv_spec)


@pytest.mark.parametrize("matrix, ops, match", [
    ([[0, 1, 1], [0, 0, 1]], ["input", C1, "output"], "square"),
    ([[0, 2], [0, 0]], ["input", "output"], "0 or 1"),
    ([[0, 1], [1, 0]], ["input", "output"], r"\(1, 0\)"),
    ([[0, 1], [0, 0]], ["input", C1, "output"], "3 ops"),
    ([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "conv5x5", "output"], "'conv5x5'.*allowed"),
    ([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", 7, "output"], "op 1 is 7.*codes 0..4"),
    ([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "output", "output"], "interior op 1"),
    ([[0, 1, 1], [0, 0, 1], [0, 0, 0]], [MP, C1, "output"], "start with 'input'"),
    ([[0] * 8] * 8, ["input"] + [C1] * 6 + ["output"], "8 vertices"),
    ("0100", "input,output,output", "3 ops for a 2x2"),
    ("012", "input,output", "V\\*V digits"),
])
def test_parse_rejects_bad_specs_with_a_clear_message(matrix, ops, match):
  with pytest.raises(JaxnasInputError, match=match):
    S.parse(matrix, ops)


def test_parse_accepts_strings_codes_and_arrays_alike():
  m = [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
  ref = S.parse(m, ["input", C3, "output"])
  assert S.parse("011001000", "input,conv3x3-bn-relu,output") == ref
  assert S.parse(np.array(m, bool), [0, 4, 1]) == ref
  assert S.as_spec((m, ("input", C3, "output"))) == ref
  assert hash(ref) == hash(S.parse(m, ["input", C3, "output"]))  # usable as a static attribute


def test_prune_removes_extraneous_vertices_and_keeps_order():
  # 0->1->4, 0->2 (2 is a dead end), 3 is unreachable (3->4), 1->4->5
  m = np.zeros((6, 6), int)
  m[0, 1] = m[0, 2] = m[1, 4] = m[3, 4] = m[4, 5] = 1
  s = S.parse(m, ["input", C1, C3, MP, C3, "output"])
  p = S.prune(s)
  assert p.ops == ("input", C1, C3, "output")
  assert p.array().tolist() == [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
  assert S.prune(p) == p and S.is_valid(s)


def test_prune_rejects_a_spec_whose_input_does_not_reach_the_output():
  s = S.parse([[0, 1, 0], [0, 0, 0], [0, 0, 0]], ["input", C1, "output"])
  with pytest.raises(JaxnasInputError, match="does not reach the output"):
    S.prune(s)
  assert not S.is_valid(s)


def test_validity_counts_pruned_edges():
  # 7 vertices, 10 raw edges of which 1 leaves a dead vertex: valid once pruned (9 edges)
  m = np.zeros((7, 7), int)
  for i, j in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3), (3, 6), (2, 6), (1, 6), (0, 5)]:
    m[i, j] = 1
  s = S.parse(m, ["input", C1, C3, MP, C1, C3, "output"])
  assert S.num_edges(s) == 10 and S.num_edges(S.prune(s)) == 9 and S.is_valid(s)
  m[4, 6] = m[0, 4] = 1  # now 11 pruned edges
  assert not S.is_valid(S.parse(m, s.ops))


def test_hash_values_quoted_in_the_spec():
  assert S.spec_hash(INCEPTION) == "28cfc7874f6d200472e1a9dcd8650aa0"
  assert S.spec_hash(INCEPTION_CANONICAL) == S.spec_hash(INCEPTION)  # isomorphs hash alike
  assert S.spec_hash(TRIVIAL).startswith("043721b9")
  # an op change changes the hash; extraneous vertices do not
  assert S.spec_hash(S.parse(INCEPTION.matrix, ("input", C3) + INCEPTION.ops[2:])) != \
      S.spec_hash(INCEPTION)
  padded = S.parse([[0, 0, 1], [0, 0, 0], [0, 0, 0]], ["input", C1, "output"])
  assert S.spec_hash(padded) == S.spec_hash(TRIVIAL)


def test_vertex_channels_examples():
  three = np.zeros((5, 5), int)
  three[0, 1:4] = 1
  three[1:4, 4] = 1
  assert S.compute_vertex_channels(8, 8, three) == (8, 3, 3, 2, 8)  # nasbench model_builder_test
  assert S.compute_vertex_channels(8, 15, three) == (8, 5, 5, 5, 15)
  assert [S.compute_vertex_channels(c, c, three)[1:4] for c in (128, 256, 512)] == \
      [(43, 43, 42), (86, 85, 85), (171, 171, 170)]
  assert S.compute_vertex_channels(3, 9, TRIVIAL.array()) == (3, 9)
  # a vertex not feeding the output takes the max of its successors' widths
  assert S.compute_vertex_channels(128, 128, INCEPTION.array()) == (128, 32, 32, 32, 32, 32, 128)
  chain = np.zeros((5, 5), int)
  chain[0, 1] = chain[1, 2] = chain[1, 3] = chain[2, 4] = chain[3, 4] = 1
  assert S.compute_vertex_channels(16, 9, chain) == (16, 5, 5, 4, 9)


def test_csv_findings_f1():
  """§13.0 F1: 299/300 rows prune, 190 distinct models, 34 trivial, the pruned-V histogram."""
  rows = csv_rows()
  specs = [S.parse(r["matrix"], r["ops"]) for r in rows]
  pruned = [S.prune(s) for s in specs]
  assert len(rows) == 300 and all(S.is_valid(s) for s in specs)
  assert sum(p != s for p, s in zip(pruned, specs)) == 299
  hashes = [S.spec_hash(s) for s in specs]
  assert len(set(hashes)) == 190
  assert sum(h.startswith("043721b9") for h in hashes) == 34
  assert collections.Counter(p.num_vertices for p in pruned) == \
      {2: 34, 3: 51, 4: 77, 5: 103, 6: 34, 7: 1}


def test_encoding_of_csv_row_1_needs_truncation():
  enc = S.encode(csv_spec(0))
  p = S.prune(csv_spec(0))
  assert p.num_vertices == 5
  assert enc.matrix.shape == (7, 7) and enc.vc.shape == (3, 7) and enc.ops.dtype == np.int32
  assert enc.live.tolist() == [True, True, True, True, False, False, True]
  assert enc.ops.tolist() == [0] + [S.OPS.index(o) for o in p.ops[1:4]] + [-1, -1, 1]
  assert enc.matrix[np.ix_([0, 1, 2, 3, 6], [0, 1, 2, 3, 6])].tolist() == p.array().tolist()
  assert enc.matrix.sum() == p.array().sum()
  assert [tuple(r[1:4]) for r in enc.vc] == [(43, 43, 42), (86, 85, 85), (171, 171, 170)]
  assert enc.matrix[1, 3] == 1 and enc.vc[0, 1] > enc.vc[0, 3]  # vertex 1 feeds the narrower 3
  assert enc.offsets[0].tolist() == [0, 0, 43, 86, 0, 0, 0]
  assert enc.vc[:, 6].tolist() == [128, 256, 512]


def test_encoding_of_the_trivial_model():
  enc = S.encode(TRIVIAL, channels=(8, 16))
  assert enc.matrix[0, 6] == 1 and enc.matrix.sum() == 1
  assert enc.ops.tolist() == [0, -1, -1, -1, -1, -1, 1]
  assert enc.vc.tolist() == [[8, 0, 0, 0, 0, 0, 8], [16, 0, 0, 0, 0, 0, 16]]
