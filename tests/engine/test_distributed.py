"""``jaxnas score --distributed`` for real: two local processes joined by ``jax.distributed`` on a
loopback port (CPU only), each scoring its share into ``OUT.shard-I-of-2``; ``--merge`` joins the
shards into a file byte-identical to a one-process run, also after a SIGKILL and ``--resume``.

Only the CSV bytes and the sidecar's ``settings`` are compared with the one-process run: the rest of
the sidecar (``run``: timings, start/finish times, modes, ``merged_from``) legitimately differs.

Every child process runs under a timeout and is killed in a ``finally`` block, so a stuck
coordinator can never hang the suite. What ``jax.distributed`` (jax 0.12) does when one process
dies: if the coordinator (process 0) dies the others abort at once (SIGABRT, "JAX distributed
service detected fatal errors"); if another process dies the coordinator aborts after the ~100 s
heartbeat timeout, even when its own shard is complete. So a killed distributed run is resumed by
restarting *every* process with ``--resume`` (tested here); committed chunks survive either way.
(One shard can also be resumed alone, with no coordinator, as ``--shard I/N --out OUT.shard-I-of-N
--resume``: its settings are the same.)
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from jaxnas import cli
from jaxnas.engine import store
from tests.conftest import REPO

N_ARCHS, N_PROC = 40, 2
SHARE = N_ARCHS // N_PROC
PROXIES = ("params", "nwot")
TIMEOUT = 180
ENV = dict(os.environ, JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1",
           TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
for _var in ("XLA_FLAGS", "JAXNAS_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR"):
  ENV.pop(_var, None)   # one CPU device per process, each compiling (the kill relies on its time)
# chunk size 1: every architecture is its own committed chunk, so a kill lands between commits
ARGS = ["score", "--sample", str(N_ARCHS), "--seed", "3", "--proxies", ",".join(PROXIES),
        "--chunk-size", "1", "--config", "C=4,N=1", "--resolution", "8", "--batch-size", "4",
        "--no-progress"]


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(argv, log):
  return subprocess.Popen([sys.executable, "-m", "jaxnas", *argv], env=ENV, cwd=REPO,
                          stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def _read(path) -> str:
  with open(path, encoding="utf-8", errors="replace") as f:
    return f.read()


def _distributed(out, tmp_path, tag, extra=()):
  """Starts the two processes of one ``--distributed`` run; returns ``[(proc, log), ...]``."""
  port = _free_port()
  procs = []
  for i in range(N_PROC):
    log = tmp_path / f"{tag}-p{i}.log"
    procs.append((_start(ARGS + ["--out", str(out), "--distributed", "--coordinator",
                                 f"127.0.0.1:{port}", "--num-processes", str(N_PROC),
                                 "--process-id", str(i), *extra], log), log))
  return procs


def _wait_ok(procs):
  deadline = time.monotonic() + TIMEOUT
  for p, log in procs:
    try:
      p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      pytest.fail(f"{log.name} still running after {TIMEOUT} s:\n{_read(log)[-3000:]}")
    assert p.returncode == 0, f"{log.name} exited {p.returncode}:\n{_read(log)[-3000:]}"


def _kill_all(procs):
  for p, _ in procs:
    if p.poll() is None:
      p.kill()
      p.wait()


def _shards(out):
  return [f"{out}.shard-{i}-of-{N_PROC}" for i in range(N_PROC)]


def _merge(out, capsys):
  capsys.readouterr()
  assert cli.main(["score", "--merge", ",".join(_shards(out)), "--out", str(out)]) == 0
  assert f"merged {N_PROC} shards: {N_ARCHS * len(PROXIES)} rows" in capsys.readouterr().out


def _assert_same_as(out, ref):
  with open(out, "rb") as f, open(ref, "rb") as g:
    assert f.read() == g.read()
  with open(store.meta_path(out)) as f, open(store.meta_path(ref)) as g:
    merged, single = json.load(f), json.load(g)
  assert merged["settings"] == single["settings"]
  assert merged["state"] == single["state"]


def _committed_rows(path) -> int:
  try:
    with open(store.meta_path(store.partial_path(path))) as f:
      return json.load(f)["state"]["rows"]
  except (OSError, ValueError, KeyError):
    return 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The one-process run (no --distributed) of the same architectures."""
  d = tmp_path_factory.mktemp("ref")
  ref, log = d / "ref.csv", d / "ref.log"
  procs = [(_start(ARGS + ["--out", str(ref)], log), log)]
  try:
    _wait_ok(procs)
  finally:
    _kill_all(procs)
  assert f"scored {N_ARCHS} architectures x {len(PROXIES)} proxies" in _read(log)
  return ref


def test_two_processes_merge_into_the_one_process_file(tmp_path, reference, capsys):
  out = tmp_path / "d.csv"
  procs = _distributed(out, tmp_path, "run")
  try:
    _wait_ok(procs)
  finally:
    _kill_all(procs)
  for i, (shard, (_, log)) in enumerate(zip(_shards(out), procs)):
    assert f"scored {SHARE} architectures x {len(PROXIES)} proxies" in _read(log)
    assert f"-> {shard}" in _read(log)
    meta = store.verify(shard)
    assert meta["state"]["complete"] and meta["state"]["rows"] == SHARE * len(PROXIES)
    assert meta["settings"]["shard"] == f"{i}/{N_PROC}"
  assert not os.path.exists(out)   # the processes write only their shards
  _merge(out, capsys)
  _assert_same_as(out, reference)


def test_sigkill_then_resume_every_process_equals_the_one_process_file(tmp_path, reference,
                                                                        capsys):
  """SIGKILL the coordinator once both processes have committed their first proxy's rows (each is
  then compiling or scoring the second); the other process is stopped by jax.distributed (or by us
  after 60 s). Restarting both with ``--resume`` completes both shards; the merge is unchanged."""
  out = tmp_path / "d.csv"
  shards = _shards(out)
  procs = _distributed(out, tmp_path, "killed")
  try:
    t0 = time.monotonic()
    # Each process compiles nwot for seconds after committing its params rows, so both are
    # normally caught there. Should one shard finish first (a very uneven machine), kill anyway:
    # the other is then interrupted and the test still holds.
    while min(map(_committed_rows, shards)) < SHARE and not any(map(os.path.exists, shards)):
      for p, log in procs:
        assert p.poll() is None, f"{log.name} ended before the kill:\n{_read(log)[-3000:]}"
      assert time.monotonic() - t0 < TIMEOUT, "the processes never committed their first proxy"
      time.sleep(0.002)
    (p0, _), (p1, _) = procs
    p0.send_signal(signal.SIGKILL)   # the coordinator dies part-way ...
    p0.wait()
    assert p0.returncode == -signal.SIGKILL
    try:   # ... and jax.distributed stops the other process (else we do, after 60 s)
      p1.wait(timeout=60)
    except subprocess.TimeoutExpired:
      p1.kill()
      p1.wait()
  finally:
    _kill_all(procs)
  killed_at = {i: _committed_rows(s) for i, s in enumerate(shards) if not os.path.exists(s)}
  assert killed_at, "no shard was interrupted"
  assert all(k < SHARE * len(PROXIES) for k in killed_at.values()), killed_at
  procs = _distributed(out, tmp_path, "resumed", ["--resume"])
  try:
    _wait_ok(procs)
  finally:
    _kill_all(procs)
  for i, k in killed_at.items():
    log = _read(procs[i][1])
    if k:
      assert f"resuming {store.partial_path(shards[i])}: {k} rows committed" in log, log
    meta = store.verify(shards[i])
    assert meta["state"]["complete"] and meta["state"]["rows"] == SHARE * len(PROXIES)
  _merge(out, capsys)
  _assert_same_as(out, reference)
