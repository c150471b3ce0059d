"""Atomic writes: all or nothing, and no temporary files left behind by killed writers."""

import os
import subprocess
import sys

import pytest

from jaxnas._files import atomic, remove_stale


def test_atomic_replaces_only_when_the_block_completes(tmp_path):
  p = tmp_path / "r.json"
  p.write_text("old")
  with pytest.raises(RuntimeError):
    with atomic(str(p)) as f:
      f.write("half")
      raise RuntimeError("killed mid-write")
  assert p.read_text() == "old" and os.listdir(tmp_path) == ["r.json"]
  with atomic(str(p)) as f:
    f.write("new")
  assert p.read_text() == "new" and os.listdir(tmp_path) == ["r.json"]


def test_temporary_files_of_dead_writers_are_removed_live_ones_kept(tmp_path):
  p = str(tmp_path / "s.csv")
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True).stdout.strip()
  for pid in (dead, str(os.getppid())):
    open(f"{p}.tmp-{pid}", "w").close()
  open(f"{p}.tmp-notapid", "w").close()
  assert remove_stale(p) == [f"{p}.tmp-{dead}"]
  with atomic(p) as f:
    f.write("x")
  assert sorted(os.listdir(tmp_path)) == ["s.csv", f"s.csv.tmp-{os.getppid()}", "s.csv.tmp-notapid"]
