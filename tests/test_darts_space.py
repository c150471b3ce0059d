"""DARTS space encodings: genotype parsing and printing, discretisation, sampling, mutation, counts."""

import collections
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.errors import JaxnasInputError
from jaxnas.spaces import darts, get_space

Genotype = collections.namedtuple("Genotype", "normal normal_concat reduce reduce_concat")

V2_PRINTED = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))")


def test_registered_space_contract():
  sp = get_space("darts")
  assert sp is darts.SPACE
  assert sp.arch_shape == (2, 8, 2) and sp.alpha_shape == (2, 14, 8) and sp.num_archs is None
  assert darts.OPS == ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                       "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
  # 14 edges: node 2 <- 0,1; node 3 <- 0,1,2; node 4 <- 0..3; node 5 <- 0..4
  assert darts.EDGES[:5] == ((2, 0), (2, 1), (3, 0), (3, 1), (3, 2)) and len(darts.EDGES) == 14
  assert darts.reduction_layers(8) == (2, 5) and darts.reduction_layers(20) == (6, 13)


def test_every_genotype_form_encodes_to_the_same_array():
  a = darts.encode("DARTS_V2")
  assert a.shape == (2, 8, 2) and a.dtype == np.int32
  assert a[0].tolist() == [[0, 4], [1, 4], [0, 4], [1, 4], [1, 4], [0, 3], [0, 3], [2, 6]]
  g = darts.genotype(a)
  forms = [darts.decode(a), g, json.loads(darts.decode(a)), V2_PRINTED,
           Genotype(**{k: [tuple(p) for p in v] if k in ("normal", "reduce") else range(2, 6)
                       for k, v in g.items()}),
           a.tolist(), a.astype(np.int64)]
  for f in forms:
    np.testing.assert_array_equal(darts.encode(f), a)
  # concat lists may be omitted
  np.testing.assert_array_equal(darts.encode({"normal": g["normal"], "reduce": g["reduce"]}), a)
  # round trip of decode through JSON for random genotypes
  for arch in np.asarray(darts.sample(jax.random.key(0), 50)):
    s = darts.decode(arch)
    assert json.loads(s)["normal_concat"] == [2, 3, 4, 5]
    np.testing.assert_array_equal(darts.encode(s), arch)


@pytest.mark.parametrize("bad, match", [
    ("{\"normal\": [[\"sep_conv_3x3\", 0]", "invalid DARTS genotype JSON"),
    ("[1, 2]", "must be an object with 'normal' and 'reduce', got list"),
    ("DARTS_V9", "invalid DARTS genotype JSON 'DARTS_V9'.*DARTS_V1, DARTS_V2"),
    ({"normal": [["sep_conv_3x3", 0]] * 7, "reduce": [["max_pool_3x3", 0]] * 8},
     "'normal' needs 8 \\[op, input\\] pairs .* got 7"),
    ({"normal": [["conv_7x1_1x7", 0], ["sep_conv_3x3", 1]] + [["skip_connect", 0],
                                                              ["skip_connect", 1]] * 3,
      "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]] * 4},
     "unknown DARTS op 'conv_7x1_1x7' in genotype 'normal'; allowed: none, max_pool_3x3"),
    ({"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 2]] + [["skip_connect", 0],
                                                              ["skip_connect", 1]] * 3,
      "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]] * 4},
     "normal slot 1 \\(node 2\\) has input node 2; allowed: 0..1"),
    ({"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 0]] + [["skip_connect", 0],
                                                              ["skip_connect", 1]] * 3,
      "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]] * 4},
     "normal node 2 takes input node 0 twice"),
    ({"normal": [["skip_connect", 0], ["skip_connect", 1]] * 4, "normal_concat": [2, 3, 4],
      "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]] * 4},
     "normal_concat must be \\[2, 3, 4, 5\\]"),
    ({"normal": [["skip_connect", 0], ["skip_connect", 1]] * 4}, "lacks 'reduce'"),
    ({"normal": [["skip_connect", 0], ["skip_connect", 1]] * 4,
      "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]] * 4, "extra": 1},
     "unknown DARTS genotype key 'extra'"),
    ({"normal": [["skip_connect", "0"], ["skip_connect", 1]] * 4,
      "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]] * 4}, "must be an integer, got '0'"),
    ("Genotype(normal=__import__('os'))", "invalid DARTS Genotype string"),
    (np.zeros((2, 8, 3), np.int32), "shape \\(2, 8, 2\\).*got shape \\(2, 8, 3\\)"),
    (np.zeros((2, 8, 2), np.float32), "int array of shape \\(2, 8, 2\\).*dtype float32"),
    (np.full((2, 8, 2), 9, np.int32), "has input node 9; allowed: 0..1"),
    (3.5, "shape \\(2, 8, 2\\).*got shape \\(\\)"),
])
def test_bad_genotypes_name_the_value(bad, match):
  with pytest.raises(JaxnasInputError, match=match):
    darts.encode(bad)


def test_op_index_range_is_checked():
  a = darts.encode("DARTS_V1").copy()
  a[1, 3, 1] = 8
  with pytest.raises(JaxnasInputError, match="op index 8 in reduce slot 3 out of range; allowed: "
                                             "0..7"):
    darts.encode(a)


def _parse_reference(w):
  """DARTS' genotype parse written out independently (model_search.Network.genotype._parse)."""
  gene, start, n = [], 0, 2
  for i in range(4):
    W = w[start:start + n]
    edges = sorted(range(i + 2), key=lambda x: -max(W[x][k] for k in range(len(W[x])) if k != 0))
    for j in edges[:2]:
      k_best = None
      for k in range(len(W[j])):
        if k != 0 and (k_best is None or W[j][k] > W[j][k_best]):
          k_best = k
      gene.append((j, k_best))
    start += n
    n += 1
  return gene


def test_discretize_matches_darts_parse_and_excludes_none():
  rng = np.random.default_rng(0)
  for trial in range(200):
    s = rng.normal(size=(2, 14, 8))
    if trial % 3 == 0:  # ties and a dominant 'none' column
      s = np.round(s, 0)
      s[..., 0] = 10.0
    a = darts.discretize(s)
    for t in range(2):
      assert [tuple(g) for g in a[t].tolist()] == _parse_reference(s[t].tolist())
    assert np.all(a[..., 1] != 0)
    darts.encode(a)  # a valid genotype (distinct inputs)
  # softmax (a monotone map per edge) gives the same op choice but DARTS ranks edges on softmax
  # values; discretize takes whatever scores it is given
  with pytest.raises(JaxnasInputError, match="shape \\(2, 14, 8\\), got \\(14, 8\\)"):
    darts.discretize(np.zeros((14, 8)))
  s = np.zeros((2, 14, 8))
  s[1, 3, 2] = np.nan
  with pytest.raises(JaxnasInputError, match="NaN \\(first at cell type reduce, edge 3, op "
                                             "avg_pool_3x3\\)"):
    darts.discretize(s)
  # -inf marks pruned ops and is allowed
  s = rng.normal(size=(2, 14, 8))
  s[:, :, 4:] = -np.inf
  assert np.all(darts.discretize(s)[..., 1] < 4)


def test_to_weights_discretize_round_trip():
  archs = np.asarray(darts.sample(jax.random.key(1), 100))
  w = np.asarray(darts.to_weights(archs))
  assert w.shape == (100, 2, 14, 8)
  assert np.all(w.sum((-1, -2)) == 8)  # 8 kept edges per cell type, one op each
  for a, wi in zip(archs, w):
    back = darts.discretize(wi)
    # same genotype up to the order of each node's two inputs (ties: lower input first)
    canon = a.copy()
    for t in range(2):
      for n in range(4):
        pair = canon[t, 2 * n:2 * n + 2]
        canon[t, 2 * n:2 * n + 2] = pair[np.argsort(pair[:, 0])]
    np.testing.assert_array_equal(back, canon)
  ops = np.asarray(darts.edge_ops(archs))
  np.testing.assert_array_equal(ops, np.argmax(w, -1) * (w.max(-1) > 0))


def test_sample_is_uniform_valid_and_seeded():
  a = np.asarray(darts.sample(jax.random.key(2), 4000))
  assert a.shape == (4000, 2, 8, 2) and a.dtype == np.int32
  for arch in a[:300]:
    darts.encode(arch)
  assert np.all(a[..., 1] >= 1) and np.all(a[..., 1] <= 7)
  np.testing.assert_allclose(np.bincount(a[..., 1].ravel(), minlength=8)[1:] / a[..., 1].size,
                             1 / 7, atol=0.01)
  # node 5 (slots 6, 7) picks each of its 5 possible inputs equally often
  np.testing.assert_allclose(np.bincount(a[:, :, 6:, 0].ravel(), minlength=5) / (4000 * 4), 0.2,
                             atol=0.02)
  np.testing.assert_array_equal(a[:10], np.asarray(darts.sample(jax.random.key(2), 4000))[:10])
  assert not np.array_equal(a[:10], np.asarray(darts.sample(jax.random.key(3), 10)))


def test_mutate_changes_exactly_one_gene_and_stays_valid():
  archs = np.asarray(darts.sample(jax.random.key(4), 200))
  keys = jax.random.split(jax.random.key(5), 200)
  out = np.asarray(jax.jit(jax.vmap(darts.mutate))(keys, archs))
  kinds = set()
  for a, b in zip(archs, out):
    darts.encode(b)
    diff = np.argwhere(a != b)
    assert len(diff) == 1, (a, b)
    kinds.add(int(diff[0][2]))
    assert b[..., 1].min() >= 1
  assert kinds == {0, 1}  # both input and op mutations happen


def test_param_count_references():
  # DARTS (Liu et al. 2019) reports 3.3 M (second order) and the repository logs 3.349342 MB for
  # DARTS_V2 at C=36, L=20 without the auxiliary head.
  assert darts.count_params(darts.encode("DARTS_V2")) == 3349342
  # DARTS_V1 differs from V2 only by one normal-cell skip_connect (no parameters) that V2 replaces
  # by a dil_conv_3x3 (9C + C^2 + 2C): 6 normal cells each at C = 36, 72, 144
  dil3 = sum(6 * (11 * c + c * c) for c in (36, 72, 144))
  assert darts.count_params(darts.encode("DARTS_V1")) == 3349342 - dil3 == 3169414
  # the auxiliary head (768*... weights) adds ~0.48 M
  aux = darts.count_params(darts.encode("DARTS_V2"), auxiliary=True) - 3349342
  assert aux == 576 * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * 10 + 10


def test_counts_trace_and_vectorise():
  archs = np.asarray(darts.sample(jax.random.key(6), 64))
  p = darts.count_params(archs, C=16, L=8)
  f = darts.count_flops(archs, C=16, L=8)
  assert p.shape == f.shape == (64,) and p.dtype == np.int64
  pj = jax.jit(jax.vmap(lambda a: darts.count_params(a, C=16, L=8)))(jnp.asarray(archs))
  fj = jax.jit(jax.vmap(lambda a: darts.count_flops(a, C=16, L=8)))(jnp.asarray(archs))
  np.testing.assert_allclose(pj, p, rtol=1e-6)
  np.testing.assert_allclose(fj, f, rtol=1e-6)
  # the size proxy's calling convention: the supernet's own configuration
  cfg = {f_: getattr(darts.model(), f_) for f_ in ("C", "L", "num_classes", "bn", "affine",
                                                    "pool_bn", "stem_multiplier")}
  assert darts.count_params(archs[0], **cfg) < darts.count_params(archs[0], C=16, L=8)
  with pytest.raises(JaxnasInputError, match="unknown FLOP convention 'nb201' for DARTS"):
    darts.count_flops(archs[0], convention="nb201")


def test_model_factory():
  assert isinstance(darts.model(), darts.DartsSupernet)
  ev = darts.model(fixed_arch="DARTS_V2", C=8, L=5, auxiliary=True)
  assert isinstance(ev, darts.DartsEvalNet) and ev.auxiliary
  np.testing.assert_array_equal(np.asarray(ev.fixed_arch), darts.encode("DARTS_V2"))
  with pytest.raises(JaxnasInputError, match="unknown DARTS DartsSupernet option 'N'"):
    darts.model(N=5)
  with pytest.raises(JaxnasInputError, match="unknown DARTS DartsEvalNet option 'pool_bn'"):
    darts.model(fixed_arch="DARTS_V2", pool_bn=True)
