"""The jaxnas command line: outputs, and every bad-input case exits 2 with one line."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxnas import benchmarks, cli
from jaxnas.spaces import nb201


def run(argv, capsys):
  code = cli.main(argv)
  out = capsys.readouterr()
  return code, out.out, out.err


def test_score_writes_long_csv_and_correlate_reads_it(tmp_path, capsys):
  out = tmp_path / "scores.csv"
  code, stdout, _ = run(["score", "--space", "nb201", "--proxies", "params,flops",
                         "--archs", "0,1459,|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                         "--out", str(out)], capsys)
  assert code == 0 and "scored 3 architectures x 2 proxies" in stdout
  with open(out) as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["index", "arch_str", "proxy", "score"]
  assert len(rows) == 6
  by = {(int(r["index"]), r["proxy"]): float(r["score"]) for r in rows}
  i3 = nb201.to_index(nb201.parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
  assert by[(1459, "params")] == pytest.approx(nb201.count_params(nb201.from_index(1459)) / 1e6,
                                               rel=1e-6)
  assert (i3, "flops") in by
  for r in rows:
    assert nb201.to_index(nb201.parse(r["arch_str"])) == int(r["index"])
  plot = tmp_path / "scatter.png"
  code, stdout, _ = run(["correlate", "--scores", str(out), "--truth",
                         "cifar10_test200,cifar100_test200", "--plot", str(plot)], capsys)
  assert code == 0 and "params" in stdout and "cifar100_test200" in stdout
  assert plot.stat().st_size > 1000


def test_default_batch_is_each_proxys_papers_and_batch_size_overrides(tmp_path, capsys):
  import json
  for extra, want in (([], {"params": 1, "epsilon": 256, "grad_norm": 64}),
                      (["--batch-size", "16"], {"params": 1, "epsilon": 16, "grad_norm": 16})):
    out = tmp_path / f"s{len(extra)}.csv"
    code, _, _ = run(["score", "--proxies", "params,epsilon,grad_norm", "--archs", "0,1459",
                      "--config", "C=2,N=1", "--resolution", "8", "--no-progress",
                      "--out", str(out)] + extra, capsys)
    assert code == 0
    with open(f"{out}.meta.json") as f:
      meta = json.load(f)
    got = {k: v["images"] for k, v in meta["settings"]["proxy_settings"].items()}
    assert got == want, extra


def test_proxies_all_scores_every_registered_proxy(monkeypatch, capsys):
  from jaxnas import engine
  from jaxnas.proxies import list_proxies
  seen = []

  def fake_score(space, archs, names, batch, **kwargs):
    seen.extend(names)
    return {n: np.ones(len(archs)) for n in names}
  monkeypatch.setattr(engine, "score", fake_score)
  code, stdout, _ = run(["score", "--proxies", "all", "--archs", "0", "--no-progress"], capsys)
  assert code == 0 and sorted(seen) == list_proxies() and len(seen) > 20   # grouped passes


def test_sample_archs_file_and_correlation_values(tmp_path, capsys):
  f = tmp_path / "archs.txt"
  f.write_text("# a comment\n180\n\n|skip_connect~0|+|none~0|avg_pool_3x3~1|+|nor_conv_3x3~0|none~1|nor_conv_1x1~2|\n")
  code, stdout, _ = run(["score", "--archs-file", str(f), "--proxies", "params"], capsys)
  assert code == 0 and "scored 2 architectures" in stdout
  out = tmp_path / "s.csv"
  code, _, _ = run(["score", "--sample", "300", "--seed", "1", "--proxies", "params",
                    "--out", str(out)], capsys)
  assert code == 0
  with open(out) as fh:
    rows = list(csv.DictReader(fh))
  idx = np.array([int(r["index"]) for r in rows])
  assert len(set(idx)) == 300
  s = np.array([float(r["score"]) for r in rows])
  rho = benchmarks.spearman(s, benchmarks.accuracy(idx))
  code, stdout, _ = run(["correlate", "--scores", str(out)], capsys)
  assert f"{rho:.3f}" in stdout and "95% CI" not in stdout
  code, stdout, _ = run(["correlate", "--scores", str(out), "--interval"], capsys)
  iv = benchmarks.spearman_interval(s, benchmarks.accuracy(idx))
  assert code == 0 and "95% CI" in stdout
  assert f"{rho:.3f} {iv['lo']:>6.3f} .. {iv['hi']:>5.3f}" in stdout
  assert iv["lo"] < rho < iv["hi"] and iv["hi"] - iv["lo"] < 0.25    # 300 architectures
  assert 0.5 < rho < 0.95  # params is a decent proxy on NB201 (published 0.75 whole space)


@pytest.mark.parametrize("argv, fragment", [
    (["score", "--archs", "99999"], "NB201 index 99999 out of range; allowed: 0..15624"),
    (["score", "--archs", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"],
     "unknown op 'conv'"),
    (["score", "--archs", "|none~0|+|none~0|"], "invalid NB201 arch string"),
    (["score", "--archs", ",,"], "--archs is empty"),
    (["score", "--space", "nb301"], "unknown search space 'nb301'; allowed:"),
    (["score", "--proxies", "foo"], "unknown proxy 'foo'; allowed:"),
    (["score", "--proxies", ""], "--proxies is empty"),
    (["score", "--dataset", "mnist"], "unknown dataset 'mnist'; allowed:"),
    (["score", "--sample", "0"], "--sample must be a positive integer"),
    (["score", "--sample", "20000"], "--sample 20000 exceeds the 15625 architectures"),
    (["score", "--sample", "x"], "invalid int value: 'x'"),
    (["score", "--archs", "1", "--sample", "3"], "give only one of --archs, --archs-file, --sample"),
    (["score", "--archs-file", "/nonexistent/a.txt"], "archs file '/nonexistent/a.txt' does not exist"),
    (["score", "--batch-size", "0", "--proxies", "params"],
     "--batch-size must be a positive integer"),
    (["score", "--archs", "1", "--out", "/nonexistent/dir/x.csv"], "output directory"),
    (["correlate", "--scores", "/nonexistent.csv"], "does not exist"),
    (["correlate", "--scores", "README.md", "--truth", "acc"], "unknown truth metric 'acc'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_exits_2_with_one_line(argv, fragment, capsys):
  code, stdout, stderr = run(argv, capsys)
  assert code == 2
  lines = [ln for ln in stderr.splitlines() if ln.strip()]
  assert len(lines) == 1 and lines[0].startswith("jaxnas: error: "), stderr
  assert fragment in lines[0]
  assert "Traceback" not in stderr


def test_malformed_files_are_rejected(tmp_path, capsys):
  bad = tmp_path / "bad.txt"
  bad.write_text("180\nnot_an_arch\n")
  code, _, err = run(["score", "--archs-file", str(bad)], capsys)
  assert code == 2 and "invalid NB201 arch string 'not_an_arch'" in err
  empty = tmp_path / "empty.txt"
  empty.write_text("# nothing\n\n")
  code, _, err = run(["score", "--archs-file", str(empty)], capsys)
  assert code == 2 and "holds no architectures" in err
  binary = tmp_path / "bin.txt"
  binary.write_bytes(b"\xff\xfe\x00\x01")
  code, _, err = run(["score", "--archs-file", str(binary)], capsys)
  assert code == 2 and "is not UTF-8 text" in err
  csvf = tmp_path / "scores.csv"
  csvf.write_text("index,proxy,score\n1,params,abc\n")
  code, _, err = run(["correlate", "--scores", str(csvf)], capsys)
  assert code == 2 and "line 2" in err and "'abc'" in err
  csvf.write_text("a,b\n1,2\n")
  code, _, err = run(["correlate", "--scores", str(csvf)], capsys)
  assert code == 2 and "lacks column(s) index, proxy, score" in err


def test_failed_run_leaves_no_output_file(tmp_path, capsys):
  out = tmp_path / "o.csv"
  code, _, _ = run(["score", "--archs", "1,99999", "--out", str(out)], capsys)
  assert code == 2 and not out.exists()
  assert not [p for p in os.listdir(tmp_path) if "tmp" in p]


def test_console_script_and_module_entry_points():
  out = subprocess.run([sys.executable, "-m", "jaxnas", "score", "--archs", "180",
                        "--proxies", "params"], capture_output=True, text=True, timeout=300)
  assert out.returncode == 0 and "scored 1 architectures" in out.stdout
  out = subprocess.run([sys.executable, "-m", "jaxnas", "score", "--archs", "99999"],
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_list_shows_every_kind(capsys):
  code, stdout, _ = run(["list"], capsys)
  assert code == 0
  for word in ("spaces:", "nb201", "proxies:", "params", "flops", "datasets:", "cifar10-bundled"):
    assert word in stdout
  # what each method runs on and each space's truth, from their declarations
  assert "truth: nb101_val" in stdout
  hnas = next(l for l in stdout.splitlines() if l.strip().startswith("hnas "))
  assert hnas.endswith("[spaces: nb201]")


def test_quickstart_prints_the_correlation_table(capsys):
  code, out, _ = run(["quickstart", "--sample", "30", "--proxies", "params,flops"], capsys)
  assert code == 0
  assert "30 NB201 architectures" in out and "cifar10_test200" in out
  # the params rows carry real Spearman values (params correlates positively with accuracy)
  rows = [l.split() for l in out.splitlines() if l.startswith("params ")]
  assert len(rows) == 2 and all(0.3 < float(r[2]) <= 1.0 for r in rows), rows


def test_quickstart_default_proxies_are_registered():
  from jaxnas.commands import quickstart
  from jaxnas.proxies import get_proxy
  for p in quickstart.DEFAULT_PROXIES.split(","):
    get_proxy(p)


def test_score_says_when_auto_runs_eagerly_for_memory(tmp_path, monkeypatch, capsys):
  """A compiled program larger than the memory the device has: 'auto' scores eagerly and the
  command says why (and the sidecar records it)."""
  import json

  from jaxnas.engine import memory, scoring
  scoring._cached_score_fn.cache_clear()
  monkeypatch.setattr(memory, "available_bytes", lambda device: 1)
  out = tmp_path / "s.csv"
  code, stdout, _ = run(["score", "--space", "nb201", "--proxies", "jacob_cov", "--archs", "0,1",
                         "--config", "C=4,N=1", "--batch-size", "4", "--resolution", "8",
                         "--no-progress", "--out", str(out)], capsys)
  scoring._cached_score_fn.cache_clear()
  assert code == 0 and "modes: jacob_cov eager" in stdout
  assert "jacob_cov: map needs" in stdout and "9.31e-10 GiB available: eager" in stdout
  meta = json.loads((tmp_path / "s.csv.meta.json").read_text())
  assert meta["run"]["memory"]["jacob_cov"].endswith("available: eager")
