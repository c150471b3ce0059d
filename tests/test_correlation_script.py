"""experiments/nb201_correlation.py: sharding and merging of score files."""

import csv

import numpy as np
import pytest

from tests.conftest import experiment_script


@pytest.fixture(scope="module")
def script():
  return experiment_script("nb201_correlation")


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


def test_outside_set_grows_the_uniform_part_of_subset_plus_1000(script):
  from jaxnas.benchmarks import nb201 as bench
  sub = bench.subset_indices()
  idx, flags = script.arch_set("subset+1000", seed=2)
  first = idx[flags & ~np.isin(idx, sub)]
  big, uni = script.arch_set("outside:2000", seed=2)
  small, _ = script.arch_set("outside:1200", seed=2)
  assert uni.all() and len(set(big.tolist())) == 2000 and not np.isin(big, sub).any()
  np.testing.assert_array_equal(big[:len(first)], first)   # the files' uniform part comes first
  np.testing.assert_array_equal(big[:1200], small)          # then a seeded order: prefixes grow
  with pytest.raises(SystemExit, match="at most 15125"):
    script.arch_set("outside:15126", seed=0)


def test_block_scores_every_proxy_per_block(script, tmp_path, monkeypatch, capsys):
  out = tmp_path / "run"
  monkeypatch.setattr("sys.argv", ["nb201_correlation.py", "--proxies", "params,flops", "--set",
                                   "random:5", "--block", "2", "--out", str(out)])
  script.main()
  log = capsys.readouterr().out
  assert log.index("params: 2 of 5") < log.index("flops: 2 of 5") < log.index("params: 4 of 5")
  for p in ("params", "flops"):
    assert len(script.read_done(out / f"scores_{p}.csv")) == 5
  monkeypatch.setattr("sys.argv", ["x", "--proxies", "params", "--block", "-1", "--out", str(out)])
  with pytest.raises(SystemExit, match="--block must be >= 0, got -1"):
    script.main()
