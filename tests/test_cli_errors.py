"""Never lose work, never show a traceback: every way a score file can disagree with its sidecar and
every malformed option value exits 2 with one line naming the file or value; no file changes."""

import hashlib
import json
import os
import shutil

import pytest

from jaxnas import cli
from jaxnas.engine import progress, store
from jaxnas.spaces import nb201

BASE = ["score", "--config", "C=4,N=1", "--proxies", "params,flops", "--batch-size", "8",
        "--resolution", "8", "--chunk-size", "1"]
ARCHS = ["--archs", "0,1,2"]
RUN = BASE + ARCHS + ["--no-progress"]


def run(argv, capsys):
  code = cli.main(argv)
  cap = capsys.readouterr()
  return code, cap.out, cap.err


def paths(out):
  """The files a run writing ``out`` may touch."""
  out = str(out)
  return [out, store.meta_path(out), store.partial_path(out),
          store.meta_path(store.partial_path(out))]


def snapshot(files):
  return {f: (open(f, "rb").read() if os.path.exists(f) else None) for f in files}


def refused(argv, capsys, fragment, out=None):
  """Runs ``argv``: exit 2, one ``jaxnas: error:`` line holding ``fragment``, the files of ``out``
  byte for byte as before (none created, none removed). Returns the line."""
  files = paths(out) if out is not None else []
  before = snapshot(files)
  code, _, err = run(argv, capsys)
  lines = [ln for ln in err.splitlines() if ln.strip()]
  assert code == 2 and len(lines) == 1 and lines[0].startswith("jaxnas: error: "), err
  assert fragment in lines[0], lines[0]
  assert snapshot(files) == before
  return lines[0]


def reseal(path, **state):
  """Makes the sidecar of ``path`` agree with its bytes again (length and SHA-256), so that the
  content checks behind the checksum are reached; ``state`` overrides more fields."""
  mp = store.meta_path(str(path))
  meta = json.load(open(mp))
  data = open(path, "rb").read()
  meta["state"].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), **state)
  store.write_json_atomic(mp, meta)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """A complete score file: 3 architectures x (params, flops), committed one row at a time."""
  out = tmp_path_factory.mktemp("ref") / "ref.csv"
  assert cli.main(RUN + ["--out", str(out)]) == 0
  return out


@pytest.fixture
def complete(tmp_path, reference):
  out = tmp_path / "s.csv"
  shutil.copy(reference, out)
  shutil.copy(store.meta_path(str(reference)), store.meta_path(str(out)))
  return out


class CtrlC:
  """A progress bar that presses Ctrl-C after 4 committed chunks (params 3/3, flops 1/3)."""

  def __init__(self, total, done=0):
    self.chunks = 0

  def phase(self, label):
    pass

  def __call__(self, n):
    self.chunks += 1
    if self.chunks >= 4:
      raise KeyboardInterrupt

  def close(self):
    pass


@pytest.fixture
def interrupted(tmp_path, monkeypatch, capsys):
  """``OUT.partial`` of a run stopped by Ctrl-C with 4 rows committed."""
  out = tmp_path / "s.csv"
  with monkeypatch.context() as m:
    m.setattr(progress, "Progress", CtrlC)
    assert cli.main(BASE + ARCHS + ["--out", str(out)]) == 130
  capsys.readouterr()
  assert not out.exists()
  assert store.verify(store.partial_path(str(out)))["state"]["done"] == {"params": 3, "flops": 1}
  return out


def ref_line(reference, proxy, index) -> bytes:
  for line in open(reference, "rb").read().split(b"\r\n"):
    if line.startswith(f"{index},".encode()) and f",{proxy},".encode() in line:
      return line + b"\r\n"
  raise AssertionError((proxy, index))


# ----------------------------------------------------------------- an existing complete --out


@pytest.mark.parametrize("extra, fragment", [
    ([], "exists and is complete with these settings: pass --resume to keep it or --overwrite"),
    (["--seed", "1"], "was written with other settings: seed: 0 in the file vs 1 now; "
                      "batch_sha256 (the minibatch images and labels)"),
])
def test_complete_out_needs_resume_or_overwrite(complete, capsys, extra, fragment):
  line = refused(RUN + extra + ["--out", str(complete)], capsys, fragment, complete)
  assert "--overwrite" in line


def test_issue_case_other_settings_never_replace_a_complete_file(complete, capsys):
  line = refused(RUN + ["--seed", "3", "--out", str(complete)], capsys,
                 "seed: 0 in the file vs 3 now", complete)
  assert "pass --overwrite to replace it" in line


def test_resume_keeps_a_complete_file_with_the_same_settings(complete, capsys):
  before = snapshot(paths(complete))
  code, out, _ = run(RUN + ["--out", str(complete), "--resume"], capsys)
  assert code == 0 and f"{complete} is already complete" in out
  assert snapshot(paths(complete)) == before


@pytest.mark.parametrize("archs, extra, fragment", [
    (ARCHS, ["--seed", "1"], "seed: 0 in the file vs 1 now"),
    (ARCHS, ["--proxies", "params"], "proxies: ['params', 'flops'] in the file vs ['params'] now"),
    (ARCHS, ["--proxies", "flops,params"], "proxies: ['params', 'flops'] in the file vs"),
    (ARCHS, ["--batch-size", "4"], "batch_size: 8 in the file vs 4 now"),
    (ARCHS, ["--dataset", "synthetic"], "dataset: 'cifar10-bundled' in the file vs 'synthetic'"),
    (ARCHS, ["--config", "C=2,N=1"], "config.C: 4 in the file vs 2 now"),
    (ARCHS, ["--config", "C=4,N=1,bn=none"], "config.bn: '<absent>' in the file vs 'none' now"),
    (ARCHS, ["--resolution", "16"], "resolution: [8, 8] in the file vs [16, 16] now"),
    (ARCHS, ["--precision", "highest"], "precision: 'default' in the file vs 'highest' now"),
    (["--archs", "0,1"], [], "n_archs: 3 in the file vs 2 now"),
    (["--archs", "0,1,3"], [], "archs_sha256 (the architecture list)"),
    (["--archs", "2,1,0"], [], "archs_sha256 (the architecture list)"),
    (["--sample", "3"], ["--space", "darts", "--config", "C=4,L=2"],
     "space: 'nb201' in the file vs 'darts' now"),
])
def test_resume_with_other_settings_is_refused(complete, capsys, archs, extra, fragment):
  argv = BASE + archs + ["--no-progress"] + extra + ["--out", str(complete), "--resume"]
  line = refused(argv, capsys, fragment, complete)
  assert "was written with other settings" in line and "--overwrite" in line


def test_issue_case_foreign_line_after_a_complete_file(complete, capsys):
  with open(complete, "ab") as f:
    f.write(b"99,foo,params,1.0\n")
  fragment = "has 18 bytes after its 6 committed rows, which jaxnas did not write"
  line = refused(RUN + ["--out", str(complete), "--resume"], capsys, fragment, complete)
  assert f"truncate it to {os.path.getsize(complete) - 18} bytes" in line
  refused(RUN + ["--out", str(complete)], capsys, fragment, complete)
  refused(["correlate", "--scores", str(complete)], capsys, fragment, complete)


def _cut(p):
  data = open(p, "rb").read()
  open(p, "wb").write(data[:-5])


def _flip(p):
  data = open(p, "rb").read()
  open(p, "wb").write(data.replace(b",params,0.", b",params,1.", 1))


def _drop_sidecar(p):
  os.remove(store.meta_path(str(p)))


def _sidecar_text(text):
  return lambda p: open(store.meta_path(str(p)), "w").write(text)


def _sidecar_state(**state):
  def edit(p):
    meta = json.load(open(store.meta_path(str(p))))
    meta["state"].update(state)
    store.write_json_atomic(store.meta_path(str(p)), meta)
  return edit


def _rows(edit, **state):
  """Edits the rows (a list of lines after the header), then reseals the sidecar."""
  def apply(p):
    head, *lines = open(p, "rb").read().split(b"\r\n")[:-1]
    head, lines = edit(head, lines)
    open(p, "wb").write(b"".join(ln + b"\r\n" for ln in [head] + lines))
    reseal(p, **state)
  return apply


def _set_row(k, text):
  def edit(head, lines):
    lines[k] = text
    return head, lines
  return edit


FOREIGN = f"15624,{nb201.decode(nb201.from_index(15624))},flops,1.5".encode()


@pytest.mark.parametrize("edit, fragment", [
    (_cut, "is truncated: "),
    (_flip, "is corrupt: the SHA-256 of its"),
    (_drop_sidecar, "has no metadata sidecar"),
    (_sidecar_text("{not json"), "is unreadable or corrupt (JSONDecodeError)"),
    (_sidecar_text('{"format": "other/1"}'), "is not a jaxnas-scores/1 sidecar"),
    (_sidecar_text('{"format": "jaxnas-scores/1", "settings": {}}'), "lacks its settings"),
    (_sidecar_state(bytes="x"), "has an invalid committed state: bytes 'x'"),
    (_sidecar_state(done={"params": 3}), "has an invalid committed state: done"),
    (_sidecar_state(done={"params": 3, "flops": 2}), "of a complete file (want 3 for every proxy)"),
    (_rows(lambda h, ls: (b"idx,arch_str,proxy,score", ls)), "does not start with the header"),
    (_rows(_set_row(1, b"1,x,params,abc")), "line 3: score 'abc' is not a number"),
    (_rows(_set_row(1, b"x,y,params,0.5")), "line 3: index 'x' is not a non-negative integer"),
    (_rows(_set_row(1, b"1,params,0.5")), "line 3 is malformed"),
    (_rows(_set_row(1, b"1,x,synflow,0.5")), "line 3 is malformed"),
    (_rows(lambda h, ls: (h, ls[:1] + ls[:1] + ls[2:])),
     "line 3: duplicate row for proxy 'params'"),
    (_rows(_set_row(5, FOREIGN)), "line 7: architecture 2 of proxy 'flops' is index 15624"),
    (_rows(lambda h, ls: (h, [ls[0], ls[3], ls[1], ls[2]] + ls[4:])),
     "line 3: a row of proxy 'flops' where its metadata"),
    (_rows(lambda h, ls: (h, ls[:5]), rows=5), "5 committed rows disagree with the rows per proxy"),
    (_rows(lambda h, ls: (h, ls), rows=7), "holds 6 committed rows, its metadata 7"),
])
def test_complete_file_disagreeing_with_its_sidecar(complete, capsys, edit, fragment):
  edit(complete)
  line = refused(RUN + ["--out", str(complete), "--resume"], capsys, fragment, complete)
  assert "--overwrite" in line and "Traceback" not in line
  refused(RUN + ["--out", str(complete)], capsys, fragment, complete)   # no flags: the same


def test_sidecar_without_its_score_file(complete, capsys):
  os.remove(complete)
  refused(RUN + ["--out", str(complete)], capsys, "s.csv.meta.json' exists but", complete)
  line = refused(RUN + ["--out", str(complete), "--resume"], capsys, "nothing to resume", complete)
  assert "--overwrite" in line


def test_out_that_is_no_jaxnas_file_is_kept(tmp_path, capsys):
  out = tmp_path / "mine.csv"
  out.write_text("index,arch_str,proxy,score\n1,x,params,0.5\n")
  line = refused(RUN + ["--out", str(out)], capsys, "has no metadata sidecar", out)
  assert "pass --overwrite to replace it" in line
  refused(RUN + ["--out", str(out), "--resume"], capsys, "has no metadata sidecar", out)


def test_overwrite_replaces_only_when_asked(complete, capsys, reference):
  code, _, err = run(RUN + ["--seed", "1", "--archs", "0,1", "--out", str(complete),
                            "--overwrite"], capsys)
  assert code == 0, err
  meta = store.verify(str(complete))
  assert meta["settings"]["seed"] == 1 and meta["state"]["complete"] and meta["state"]["rows"] == 4
  assert complete.read_bytes().count(b"\r\n") == 5


# ----------------------------------------------------------------- an interrupted run


def test_interrupted_run_needs_resume_or_overwrite(interrupted, capsys):
  line = refused(RUN + ["--out", str(interrupted)], capsys, "an interrupted run exists at",
                 interrupted)
  assert "--resume" in line and "--overwrite" in line
  refused(RUN + ["--seed", "1", "--out", str(interrupted), "--resume"], capsys,
          "seed: 0 in the file vs 1 now", interrupted)


@pytest.mark.parametrize("tail, fragment", [
    (b"99,foo,params,1.0\n", "(line 6 is not a jaxnas row)"),
    (b"\xff\xfe", "(line 6 is not a jaxnas row)"),
    (b"2,x,params,0.5\r\n", "line 6 is malformed"),     # params is done: flops is in progress
    (b"1,x,flops,abc\r\n", "line 6: score 'abc' is not a number"),
    (b"0,x,flops,0.5\r\n", "line 6 is not the next architecture of 'flops'"),
    (FOREIGN + b"\r\n", "line 6 is not the next architecture of 'flops'"),
    (b"x" * 10, "line 6 does not start with an index"),
])
def test_foreign_bytes_after_an_interrupted_run(interrupted, capsys, tail, fragment):
  part = store.partial_path(str(interrupted))
  committed = os.path.getsize(part)
  with open(part, "ab") as f:
    f.write(tail)
  line = refused(RUN + ["--out", str(interrupted), "--resume"], capsys, fragment, interrupted)
  assert "that are not a chunk cut off by a kill" in line
  assert f"truncate it to {committed} bytes" in line and "--overwrite" in line


@pytest.mark.parametrize("whole_rows, cut", [(0, 7), (1, 30), (2, 0), (0, 0)])
def test_killed_chunk_is_dropped_and_resume_gives_the_uninterrupted_file(
    interrupted, capsys, reference, whole_rows, cut):
  part = store.partial_path(str(interrupted))
  rows = [ref_line(reference, "flops", i) for i in (1, 2)]
  tail = b"".join(rows[:whole_rows]) + (rows[whole_rows][:cut] if whole_rows < 2 else b"")
  with open(part, "ab") as f:
    f.write(tail + b"\0" * 3 * (cut == 0))   # a crash may also leave zeros
  code, out, err = run(RUN + ["--out", str(interrupted), "--resume"], capsys)
  assert code == 0, err
  assert "resuming" in out and "scored 3 architectures x 2 proxies" in out
  assert interrupted.read_bytes() == reference.read_bytes()
  assert not os.path.exists(part)


def test_partial_sidecar_without_its_file(interrupted, capsys):
  os.remove(store.partial_path(str(interrupted)))
  line = refused(RUN + ["--out", str(interrupted), "--resume"], capsys,
                 "records 4 committed rows but", interrupted)
  assert "--overwrite" in line


# ----------------------------------------------------------------- shards


def test_merge_never_replaces_an_existing_file(tmp_path, complete, reference, capsys):
  shards = []
  for i in range(2):
    p = tmp_path / f"shard{i}.csv"
    assert run(RUN + ["--shard", f"{i}/2", "--out", str(p)], capsys)[0] == 0
    shards.append(str(p))
  merge = RUN[:1] + ["--merge", ",".join(shards), "--out", str(complete)]
  refused(merge, capsys, "exists: pass --overwrite to replace it with the merged file", complete)
  refused(RUN[:1] + ["--merge", ",", "--out", str(complete)], capsys, "--merge is empty", complete)
  refused(RUN[:1] + ["--merge", shards[0], "--out", shards[0]], capsys,
          "would replace the shard", shards[0])
  refused(RUN[:1] + ["--merge", shards[0], "--out", str(tmp_path / "m.csv")], capsys,
          "need shards 0..1 of 2 exactly once", tmp_path / "m.csv")
  complete.write_bytes(b"")
  assert run(merge + ["--overwrite"], capsys)[0] == 0
  assert complete.read_bytes() == reference.read_bytes()
  assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


# ----------------------------------------------------------------- malformed option values


@pytest.mark.parametrize("argv, fragment", [
    (["--config", "C=abc"], "--config C='abc' must be a positive integer"),
    (["--config", "C=0"], "--config C='0' must be a positive integer"),
    (["--config", "N=-1"], "--config N='-1' must be a positive integer"),
    (["--config", "C=4.5"], "--config C='4.5' must be a positive integer"),
    (["--config", "bn=foo"], "--config bn='foo' must be one of: batch, running, none"),
    (["--config", "reduction_bn=x"], "--config reduction_bn='x' must be one of: batch,"),
    (["--config", "weight_init=foo"], "must be one of: torch, kaiming_normal"),
    (["--config", "cell_bn_affine=maybe"], "--config cell_bn_affine='maybe' must be true or false"),
    (["--config", "gates=true"], "unknown --config key 'gates'; allowed: C, N, bn,"),
    (["--config", "relu_probe=x"], "unknown --config key 'relu_probe'"),
    (["--config", "fixed_arch=1"], "unknown --config key 'fixed_arch'"),
    (["--config", "num_classes=3"], "--config key 'num_classes' is not an option: the dataset"),
    (["--config", "C=4,C=8"], "--config key 'C' given twice ('4' and '8')"),
    (["--config", ","], "--config is empty"),
    (["--config", "C=4,=3"], "--config item '=3' is not KEY=VALUE"),
    (["--space", "darts", "--sample", "2", "--config", "L=0"], "--config L='0' must be a positive"),
    (["--space", "darts", "--sample", "2", "--config", "conv_impl=x"],
     "--config conv_impl='x' must be one of: auto, shifted, lax"),
    (["--seed", "-1"], "--seed must be an integer from 0 to 4294967295, got -1"),
    (["--seed", "4294967296"], "--seed must be an integer from 0 to 4294967295"),
    (["--archs", "0,0"], "--archs names architecture 0 twice"),
    (["--archs", f"5,{nb201.decode(nb201.from_index(5))}"], "--archs names architecture 5 twice"),
    (["--archs", "-1"], "--archs: index -1 out of range; allowed: 0..15624"),
    (["--proxies", "params,params"], "--proxies names 'params' twice"),
    (["--batch-size", "-1"], "--batch-size must be a positive integer, got -1"),
    (["--resolution", "0"], "--resolution must be a positive integer, got 0"),
    (["--resolution", "3"], "--resolution must divide the image size 32, got 3"),
    (["--group", "0"], "--group must be a positive integer, got 0"),
    (["--devices", "0"], "--devices must be a positive integer, got 0"),
    (["--chunk-size", "-2"], "--chunk-size must be a positive integer, got -2"),
    (["--sample", "-2"], "--sample must be a positive integer"),
    (["--process-id", "1"], "--coordinator, --num-processes and --process-id need --distributed"),
    (["--distributed", "--out", "x.csv", "--num-processes", "0"],
     "--num-processes must be a positive integer, got 0"),
    (["--distributed", "--out", "x.csv", "--num-processes", "2", "--process-id", "2"],
     "--process-id must be below --num-processes 2, got 2"),
    (["--distributed", "--out", "x.csv", "--process-id", "-1"],
     "--process-id must be a non-negative integer, got -1"),
    (["--distributed", "--shard", "0/2", "--out", "x.csv"],
     "give only one of --shard, --distributed"),
    (["--merge", "a.csv"], "need --out"),
    (["--merge", ",", "--out", "x.csv"], "--merge is empty"),
    (["--merge", "a.csv", "--resume", "--out", "x.csv"], "--merge joins finished shards"),
    (["--merge", "/nonexistent/a.csv", "--out", "x.csv"],
     "score file '/nonexistent/a.csv' does not exist"),
    (["--data-dir", "/nonexistent"], "--data-dir '/nonexistent' is not a directory"),
])
def test_malformed_score_options(argv, fragment, capsys):
  refused(["score", "--archs", "1,2", "--proxies", "params", *argv], capsys, fragment)


@pytest.mark.parametrize("argv, fragment", [
    (["--set", "n=2", "--set", 'config={"C": "abc"}'], "--set config C='abc' must be a positive"),
    (["--set", "n=2", "--set", 'config={"bn": "x"}'], "--set config bn='x' must be one of: batch,"),
    (["--set", "n=2", "--set", "batch_size=-1"], "--set batch_size must be a non-negative integer"),
    (["--set", "n=2", "--set", "resolution=0"], "--set resolution must be a positive integer"),
    (["--set", "n=2", "--set", "chunk_size=0"], "--set chunk_size must be a positive integer"),
    (["--set", "n=2", "--set", "mode=fast"], "unknown --set mode 'fast'; allowed: auto,"),
    (["--set", "n=2", "--set", "dataset=mnist"], "unknown dataset 'mnist'; allowed:"),
    (["--seed", "4294967296"], "--seed must be an integer from 0 to 4294967295"),
])
def test_malformed_search_options(argv, fragment, capsys):
  refused(["search", "--method", "random", "--proxy", "params", *argv], capsys, fragment)


@pytest.mark.parametrize("argv, fragment", [
    (["--set", "stages=params"], "stage 'params' of option 'stages' is not"),
    (["--set", "stages=params:3,bogus:1"], "unknown proxy in option 'stages': 'bogus'"),
    (["--set", "stages=synflow@5:3"], "resolution must divide 32, got 5"),
    (["--set", "n=-1"], "--set n must be a non-negative integer, got -1"),
    (["--set", "queries=-2"], "--set queries must be a non-negative integer, got -2"),
    (["--proxy", "synflow"], "--proxy applies to random and rea, not to 'cascade'"),
])
def test_malformed_cascade_options(argv, fragment, capsys):
  refused(["search", "--method", "cascade", *argv], capsys, fragment)


def test_nasi_batch_size_zero_is_refused(capsys):
  refused(["search", "--method", "nasi", "--set", "batch_size=0"], capsys,
          "--set batch_size must be a positive integer, got 0")


def test_search_and_quickstart_never_replace_a_file_silently(tmp_path, capsys):
  old = tmp_path / "r.json"
  old.write_text("keep me")
  refused(["search", "--method", "random", "--proxy", "params", "--out", str(old)], capsys,
          f"--out {str(old)!r} exists; give --overwrite", old)
  refused(["quickstart", "--out", str(old)], capsys, "exists; give --overwrite", old)
  refused(["search", "--method", "random", "--proxy", "params", "--overwrite"], capsys,
          "--overwrite needs --out")
  refused(["search", "--method", "random", "--proxy", "nope"], capsys, "unknown proxy 'nope'")
  argv = ["search", "--method", "random", "--proxy", "params", "--out", str(old), "--overwrite",
          "--set", "n=3", "--set", 'config={"C": 4, "N": 1}', "--set", "resolution=8"]
  assert run(argv, capsys)[0] == 0
  assert json.loads(old.read_text())["method"] == "random"


def test_malformed_files_and_paths(tmp_path, capsys, reference):
  archs = tmp_path / "a.txt"
  archs.write_text("1\n# again\n1\n")
  refused(["score", "--archs-file", str(archs)], capsys,
          f"archs file {str(archs)!r} names architecture 1 twice")
  refused(["score", "--archs", "1", "--out", str(tmp_path)], capsys, "is a directory")
  refused(["search", "--method", "random", "--proxy", "params", "--out", str(tmp_path)], capsys,
          f"--out {str(tmp_path)!r} is a directory")
  refused(["correlate", "--scores", str(reference), "--plot", str(tmp_path)], capsys,
          "--plot", reference)
  refused(["correlate", "--scores", str(reference), "--plot", "/nonexistent/p.png"], capsys,
          "output directory '/nonexistent' does not exist")
  refused(["correlate", "--scores", str(reference), "--truth", "cifar10_test200,cifar10_test200"],
          capsys, "--truth names 'cifar10_test200' twice")
  dup = tmp_path / "dup.csv"
  dup.write_text("index,arch_str,proxy,score\n1,x,params,0.5\n1,x,params,0.7\n")
  refused(["correlate", "--scores", str(dup)], capsys,
          "line 3: a second row for proxy 'params', index 1")
  binary = tmp_path / "bin.csv"
  binary.write_bytes(b"\xff\xfeindex\n")
  refused(["correlate", "--scores", str(binary)], capsys, "is not UTF-8 text")
  stale = tmp_path / "stale.csv"
  stale.write_bytes(reference.read_bytes().replace(b",params,0.", b",params,1.", 1))
  shutil.copy(store.meta_path(str(reference)), store.meta_path(str(stale)))
  refused(["correlate", "--scores", str(stale)], capsys,
          "committed bytes does not match its metadata (to read it as a plain CSV, move its "
          "sidecar", stale)


def test_os_errors_are_one_line(monkeypatch, capsys):
  from jaxnas.commands import listing

  def denied(args):
    raise PermissionError(13, "Permission denied", "/root/x.csv")
  monkeypatch.setattr(listing, "run", denied)
  code, _, err = run(["list"], capsys)
  assert code == 1 and err == "jaxnas: error: Permission denied '/root/x.csv'\n"


def test_running_out_of_memory_is_one_line_with_what_to_try(monkeypatch, capsys):
  import jax
  import jax.numpy as jnp
  from jaxnas.commands import listing

  def huge(args):   # a real XLA allocation failure (4 PB: beyond any address space), no stand-in
    jax.jit(lambda: jnp.ones((10 ** 15,), jnp.float32))().block_until_ready()
  monkeypatch.setattr(listing, "run", huge)
  code, _, err = run(["list"], capsys)
  assert code == 1 and err.count("\n") == 1
  assert err.startswith(f"jaxnas: error: {cli.OUT_OF_MEMORY_HINT} (RESOURCE_EXHAUSTED: ")

  def other(args):   # any other runtime error is a bug: its traceback is kept
    raise RuntimeError("something else")
  monkeypatch.setattr(listing, "run", other)
  with pytest.raises(RuntimeError, match="something else"):
    cli.main(["list"])
