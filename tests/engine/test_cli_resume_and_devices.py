"""End to end in subprocesses: SIGKILL at any moment then --resume gives the uninterrupted file;
four (forced CPU) devices give the scores of one."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from jaxnas import cli
from jaxnas.engine import store
from tests.conftest import REPO

ENV = dict(os.environ, JAX_DISABLE_MOST_OPTIMIZATIONS="1", TF_CPP_MIN_LOG_LEVEL="3",
           PYTHONPATH=str(REPO))
ARGS = ["score", "--sample", "200", "--seed", "2", "--proxies", "params,flops",
        "--chunk-size", "2", "--config", "C=4,N=1", "--resolution", "8", "--batch-size", "4",
        "--no-progress"]


def _committed_rows(out):
  try:
    with open(store.meta_path(store.partial_path(out))) as f:
      return json.load(f)["state"]["rows"]
  except (OSError, ValueError):
    return 0


def _start_and_kill(argv, out, at_rows):
  """Starts the CLI, SIGKILLs it once ``at_rows`` rows are committed; returns the rows then."""
  proc = subprocess.Popen([sys.executable, "-m", "jaxnas", *argv], env=ENV, cwd=REPO,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  t0 = time.monotonic()
  while _committed_rows(out) < at_rows:
    assert proc.poll() is None, proc.stderr.read().decode()
    assert time.monotonic() - t0 < 120, "the run never committed"
    time.sleep(0.002)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
  return _committed_rows(out)


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path, capsys):
  ref = tmp_path / "ref.csv"
  assert cli.main(ARGS + ["--out", str(ref)]) == 0
  capsys.readouterr()
  out = str(tmp_path / "s.csv")
  first = _start_and_kill(ARGS + ["--out", out], out, 30)
  assert first < 400 and not os.path.exists(out)
  second = _start_and_kill(ARGS + ["--out", out, "--resume"], out, first + 200)  # in the 2nd proxy
  assert second > first
  r = subprocess.run([sys.executable, "-m", "jaxnas", *ARGS, "--out", out, "--resume"], env=ENV,
                     cwd=REPO, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr
  assert "resuming" in r.stdout and "scored 200 architectures x 2 proxies" in r.stdout
  with open(out, "rb") as f, open(ref, "rb") as g:
    assert f.read() == g.read()
  meta = json.load(open(store.meta_path(out)))
  assert meta["run"]["resumes"] == 2 and meta["state"]["rows"] == 400


@pytest.mark.parametrize("argv, fragment", [
    (["--config", "width=3"], "unknown --config key 'width'; allowed: C, N,"),
    (["--config", "C"], "--config item 'C' is not KEY=VALUE"),
    (["--resolution", "5"], "--resolution must divide the image size 32, got 5"),
    (["--shard", "2/2", "--out", "x.csv"], "--shard I/N needs 0 <= I < N, got '2/2'"),
    (["--mode", "fast"], "unknown --mode 'fast'; allowed: auto, map, vmap, hybrid"),
    (["--chunk-size", "0"], "--chunk-size must be a positive integer, got 0"),
    (["--resume"], "need --out"),
    (["--resume", "--overwrite", "--out", "x.csv"], "give only one of --resume, --overwrite"),
    (["--precision", "low"], "unknown --precision 'low'"),
])
def test_bad_options_exit_2_with_one_line(argv, fragment, capsys):
  code = cli.main(["score", "--archs", "1,2", *argv])
  err = capsys.readouterr().err
  lines = [ln for ln in err.splitlines() if ln.strip()]
  assert code == 2 and len(lines) == 1 and fragment in lines[0], err


def test_corrupt_output_exits_2(tmp_path, capsys):
  out = tmp_path / "s.csv"
  assert cli.main(["score", "--archs", "1,2,3", "--out", str(out)]) == 0
  out.write_bytes(out.read_bytes()[:-3])
  capsys.readouterr()
  assert cli.main(["score", "--archs", "1,2,3", "--out", str(out), "--resume"]) == 2
  assert "is truncated" in capsys.readouterr().err


FOUR_DEVICES = textwrap.dedent("""
    import json, jax, numpy as np
    from jaxnas import engine
    from jaxnas.spaces import nb201
    from tests.conftest import TINY, tiny_batch_of
    assert jax.local_device_count() == 4, jax.devices()
    archs = nb201.from_index(np.arange(0, 15625, 1201))     # 14 architectures
    batch = tiny_batch_of(2)
    res = {}
    for mode in ("map",):
      for d in (1, 4):
        info = {}
        vals = np.concatenate([v for *_, v in engine.iter_scores(
            "nb201", archs, "l2_norm", batch, config=TINY, chunk_size=6, mode=mode, devices=d,
            report=info)])
        res[f"{mode}{d}"] = vals.tolist()
        res[f"{mode}{d}_devices"] = info["devices"]
    info = {}
    res["params4"] = np.concatenate([v for *_, v in engine.iter_scores(
        "nb201", archs, "params", batch, config=TINY, chunk_size=3, devices=4,
        report=info)]).tolist()                              # auto: vmap inside shard_map
    assert info == {"mode": "vmap", "branches": False, "devices": 4, "group": None}, info
    print(json.dumps(res))
""")


def test_four_devices_give_the_scores_of_one():
  env = dict(ENV, XLA_FLAGS="--xla_force_host_platform_device_count=4")
  r = subprocess.run([sys.executable, "-c", FOUR_DEVICES], env=env, cwd=REPO,
                     capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  res = json.loads(r.stdout.strip().splitlines()[-1])
  assert res["map4_devices"] == 4 and res["map1_devices"] == 1
  np.testing.assert_array_equal(res["map4"], res["map1"])
  from jaxnas.spaces import nb201
  archs = nb201.from_index(np.arange(0, 15625, 1201))
  np.testing.assert_allclose(res["params4"], nb201.count_params(archs, C=4, N=1) / 1e6, rtol=1e-6)
