"""experiments/nb201_correlation.py: sharding and merging of score files."""

import csv
import importlib.util
import os

import numpy as np
import pytest

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "experiments", "nb201_correlation.py")


@pytest.fixture(scope="module")
def script():
  spec = importlib.util.spec_from_file_location("nb201_correlation", _PATH)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def _write(path, rows):
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(("index", "arch_str", "proxy", "score"))
    for i, v in rows:
      w.writerow((i, f"arch{i}", "nwot", repr(v)))


def test_shards_partition_the_set(script):
  idx = np.arange(15625)
  parts = [script.shard(idx, f"{k}/3") for k in range(3)]
  np.testing.assert_array_equal(np.sort(np.concatenate(parts)), idx)
  assert sum(len(p) for p in parts) == len(idx)
  np.testing.assert_array_equal(script.shard(idx, ""), idx)


@pytest.mark.parametrize("bad", ["2/2", "-1/2", "1", "a/b", "1/0"])
def test_bad_shard_names_the_value(script, bad):
  with pytest.raises(SystemExit, match="K/M"):
    script.shard(np.arange(10), bad)


def test_merge_appends_missing_rows_and_checks_overlap(script, tmp_path):
  out, s0, s1 = (tmp_path / d for d in ("out", "s0", "s1"))
  for d in (out, s0, s1):
    d.mkdir()
  _write(out / "scores_nwot.csv", [(0, 1.5)])
  _write(s0 / "scores_nwot.csv", [(0, 1.5), (2, 3.0)])
  _write(s1 / "scores_nwot.csv", [(1, -2.0), (3, 4.25)])
  added = script.merge(str(out), [str(s0), str(s1)])
  assert added == {"nwot": 3}
  assert script.read_done(str(out / "scores_nwot.csv")) == {0: 1.5, 1: -2.0, 2: 3.0, 3: 4.25}
  assert script.merge(str(out), [str(s0)]) == {"nwot": 0}  # idempotent


def test_merge_refuses_disagreeing_scores(script, tmp_path):
  out, src = tmp_path / "out", tmp_path / "src"
  out.mkdir()
  src.mkdir()
  _write(out / "scores_nwot.csv", [(7, 1.0)])
  _write(src / "scores_nwot.csv", [(7, 1.1)])
  with pytest.raises(SystemExit, match="architecture 7"):
    script.merge(str(out), [str(src)])
  with pytest.raises(SystemExit, match="not a directory"):
    script.merge(str(out), [str(tmp_path / "missing")])


def test_uniform_set_is_the_uniform_part_of_subset_plus(script):
  idx, is_uni = script.arch_set("subset+300", seed=3)
  uni, flags = script.arch_set("uniform:300", seed=3)
  assert flags.all() and len(uni) == 300
  assert set(uni) <= set(idx)
  np.testing.assert_array_equal(np.sort(idx[is_uni]), np.sort(uni))
  with pytest.raises(SystemExit, match="allowed"):
    script.arch_set("everything", seed=0)


def test_random_set_is_scored_in_draw_order_so_prefixes_are_uniform(script):
  big, flags = script.arch_set("random:3000", seed=3)
  small, _ = script.arch_set("random:300", seed=3)
  assert flags.all() and len(set(big.tolist())) == 3000
  np.testing.assert_array_equal(big[:300], small)
  assert not np.all(np.diff(big) > 0)                      # not sorted: the draw order
  with pytest.raises(SystemExit, match="1..15625"):
    script.arch_set("random:0", seed=0)
