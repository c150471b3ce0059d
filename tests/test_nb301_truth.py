"""DARTS ground truth (NAS-Bench-301 surrogate, 500 genotypes) and CSV archs files."""

import csv
import json

import numpy as np
import pytest

from jaxnas import benchmarks, cli
from jaxnas.commands import _io
from jaxnas.errors import JaxnasInputError
from jaxnas.spaces import get_space
from tests.conftest import SHARED

NB301_CSV = SHARED / "nb301_naslib500.csv"


def test_bundled_table_shape_and_range():
  t = benchmarks.nb301.table()
  assert t["archs"].shape == (500, 2, 8, 2) and t["nb301_val"].shape == (500,)
  assert np.all((t["nb301_val"] > 80) & (t["nb301_val"] < 96))
  assert len({a.tobytes() for a in t["archs"]}) == 500    # distinct genotypes


@pytest.mark.skipif(not NB301_CSV.exists(), reason="shared data not beside this checkout")
def test_bundled_table_equals_the_shared_file():
  with open(NB301_CSV, newline="") as f:
    rows = list(csv.DictReader(f))
  got = benchmarks.nb301.accuracy_of([r["genotype"] for r in rows])
  np.testing.assert_allclose(got, [float(r["val_accuracy"]) for r in rows], rtol=0, atol=1e-9)
  assert benchmarks.nb301.genotypes()[7] == get_space("darts").decode(
      get_space("darts").encode(rows[7]["genotype"]))


def test_lookup_by_any_encoding_and_nan_outside():
  space = get_space("darts")
  g = benchmarks.nb301.genotypes()[3]
  want = benchmarks.nb301.table()["nb301_val"][3]
  assert benchmarks.nb301.accuracy_of([g, space.encode(g)]).tolist() == [want, want]
  other = np.asarray(space.sample(__import__("jax").random.key(0), 1))[0]
  assert np.isnan(benchmarks.nb301.accuracy_of([other])[0])
  assert benchmarks.truth("nb301_val", [0], [g])[0] == want
  with pytest.raises(JaxnasInputError, match="truth metric"):
    benchmarks.truth("nb301_bogus", [0], [g])


def _write_csv(path, header, rows):
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(header)
    w.writerows(rows)


def test_csv_archs_file_genotype_column(tmp_path):
  gs = benchmarks.nb301.genotypes()[:3]
  p = tmp_path / "g.csv"
  _write_csv(p, ["genotype", "val_accuracy"], [[g, 90.0] for g in gs])
  archs = _io.select_archs(get_space("darts"), None, str(p), None, 0)
  assert [get_space("darts").decode(a) for a in archs] == gs
  # NB201 via an index column; matrix+ops pairs become (matrix, ops) tokens
  q = tmp_path / "i.csv"
  _write_csv(q, ["index", "x"], [[5, 1], [9930, 2]])
  assert _io.read_archs_file(str(q)) == ["5", "9930"]
  r = tmp_path / "m.csv"
  _write_csv(r, ["matrix", "ops"], [["0100", "input,output"]])
  assert _io.read_archs_file(str(r)) == [("0100", "input,output")]
  bad = tmp_path / "b.csv"
  _write_csv(bad, ["genotype"], [[""]])
  with pytest.raises(JaxnasInputError, match="line 2: empty genotype"):
    _io.read_archs_file(str(bad))


def test_score_and_correlate_darts_against_nb301(tmp_path, capsys):
  """The CLI contract: --archs-file takes the shared file's columns; ``index`` is the row, and
  ``arch_str`` the canonical genotype; correlate --truth nb301_val looks it up."""
  gs = benchmarks.nb301.genotypes()
  vals = benchmarks.nb301.table()["nb301_val"]
  pick = [0, 10, 20, 30, 40, 50]
  src = tmp_path / "g.csv"
  _write_csv(src, ["genotype", "val_accuracy"], [[gs[i], vals[i]] for i in pick])
  out = tmp_path / "s.csv"
  assert cli.main(["score", "--space", "darts", "--archs-file", str(src), "--proxies", "params",
                   "--config", "C=4,L=3", "--out", str(out), "--no-progress"]) == 0
  with open(out, newline="") as f:
    rows = list(csv.DictReader(f))
  assert [int(r["index"]) for r in rows] == list(range(len(pick)))
  assert [json.loads(r["arch_str"]) for r in rows] == [json.loads(gs[i]) for i in pick]
  capsys.readouterr()
  assert cli.main(["correlate", "--scores", str(out), "--truth", "nb301_val"]) == 0
  text = capsys.readouterr().out
  want = benchmarks.spearman(np.array([float(r["score"]) for r in rows]), vals[pick])
  line = [ln for ln in text.splitlines() if ln.startswith("params")][0]
  assert f"{want:.3f}" in line and line.split()[-2] == str(len(pick))
  assert cli.main(["correlate", "--scores", str(out),
                   "--truth", "nb301_val,cifar10_test200"]) == 2
  assert "mixes spaces" in capsys.readouterr().err


def test_each_space_owns_its_truth_metrics():
  """``benchmarks.truths()`` is what the spaces declare; ``truth`` looks up through the space."""
  from jaxnas import benchmarks
  from jaxnas.spaces import get_space, list_spaces
  owners = benchmarks.truths()
  assert owners == benchmarks.TRUTHS
  assert {owners[m] for m in ("cifar10_test200", "nb301_val", "nb101_val")} == {
      "nb201", "darts", "nb101"}
  for name in list_spaces():
    sp = get_space(name)
    assert all(owners[m] == name for m in sp.metrics)
    assert ("benchmark" in sp.capabilities()) == (sp.accuracy is not None)
  nb = get_space("nb201")
  idx = np.array([0, 9930, 15624])
  np.testing.assert_array_equal(benchmarks.truth("cifar100_test200", idx),
                                benchmarks.accuracy(idx, "cifar100_test200"))
  np.testing.assert_array_equal(nb.accuracy(nb.from_index(idx), "cifar10_test200"),
                                benchmarks.accuracy(idx, "cifar10_test200"))
