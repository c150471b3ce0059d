"""Incremental score files: atomic chunks, resume equals an uninterrupted run, corrupt, truncated,
foreign and mismatched files are reported, shards merge into the unsharded file."""

import json
import os

import numpy as np
import pytest

from jaxnas import engine
from jaxnas.commands import _io
from jaxnas.engine import runner, sharding, store
from jaxnas.spaces import nb201
from tests.conftest import TINY, tiny_batch_of

PROXIES = ["params", "l2_norm"]
ARCHS = nb201.from_index(np.arange(0, 15625, 313))   # 50 architectures: 7 chunks of 8 per proxy
BATCH = tiny_batch_of(4)


class Crash(Exception):
  pass


def crash_after(k):
  """A progress callback that raises after ``k`` committed chunks (a crash between chunks)."""
  calls = []

  def cb(n):
    calls.append(n)
    if len(calls) >= k:
      raise Crash
  return cb


def run(out, archs=ARCHS, proxies=PROXIES, **kw):
  kw.setdefault("config", TINY)
  return engine.score_to_file("nb201", archs, proxies, BATCH, str(out), chunk_size=8, **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  out = tmp_path_factory.mktemp("ref") / "ref.csv"
  meta = run(out)
  return out, meta


def test_complete_file_has_scores_settings_and_checksum(reference):
  out, meta = reference
  assert not os.path.exists(store.partial_path(str(out)))
  _, scores = engine.load(str(out))
  want = engine.score("nb201", ARCHS, PROXIES, BATCH, config=TINY, chunk_size=8)
  for p in PROXIES:
    np.testing.assert_array_equal(scores[p][0], nb201.to_index(ARCHS))
    np.testing.assert_array_equal(scores[p][1], want[p])   # repr round-trips float64 exactly
  assert _io.read_scores(str(out)).keys() == set(PROXIES)  # the plain CSV reader still works
  with open(out) as f:
    assert f.readline().strip() == "index,arch_str,proxy,score"
  s = meta["settings"]
  assert s["proxies"] == PROXIES and s["seed"] == 0 and s["batch_size"] == 4
  assert s["proxy_settings"]["l2_norm"]["module"]["bn"] == "batch"
  assert s["proxy_settings"]["params"]["dtype"] == "float32"
  assert {"jax", "jaxlib", "flax", "numpy", "jaxnas"} <= set(s["versions"])
  assert meta["state"]["complete"] and meta["state"]["rows"] == 2 * len(ARCHS)


def test_interrupted_runs_resume_to_an_identical_file(tmp_path, reference):
  ref, _ = reference
  out = tmp_path / "s.csv"
  with pytest.raises(Crash):
    run(out, progress=crash_after(3))
  part = store.partial_path(str(out))
  assert not out.exists() and os.path.exists(part)
  assert store.verify(part)["state"]["rows"] == 24   # three whole chunks, committed
  with pytest.raises(store.OutputError, match="pass --resume to continue it"):
    run(out)
  with pytest.raises(Crash):   # crash again, in the second proxy
    run(out, resume=True, progress=crash_after(6))
  assert store.verify(part)["state"]["done"] == {"params": 50, "l2_norm": 16}
  meta = run(out, resume=True)
  assert out.read_bytes() == ref.read_bytes()
  assert meta["run"]["resumes"] == 2 and not os.path.exists(part)
  msgs = []
  run(out, resume=True, log=msgs.append)   # complete: nothing to do
  assert msgs == [f"{out} is already complete"]


def test_uncommitted_bytes_are_dropped(tmp_path, reference):
  ref, _ = reference
  out = tmp_path / "s.csv"
  with pytest.raises(Crash):
    run(out, progress=crash_after(2))
  with open(store.partial_path(str(out)), "ab") as f:   # a chunk cut off by a kill
    f.write(b"4695,|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|no")
  msgs = []
  run(out, resume=True, log=msgs.append)
  assert "dropped 55 bytes of an uncommitted chunk" in msgs[0]
  assert out.read_bytes() == ref.read_bytes()


def _partial_run(tmp_path, k=3):
  out = tmp_path / "s.csv"
  with pytest.raises(Crash):
    run(out, progress=crash_after(k))
  return out, store.partial_path(str(out))


def test_execution_only_module_fields_do_not_block_a_resume(tmp_path, reference):
  """Settings record what a network computes, not how it executes: a file whose module settings
  carry ``unrolled``, ``relu_probe``, ``remat`` or ``compact`` (written before those fields were
  left out, or with recomputation on) or lack them
  (written before a space's network gained them) resumes to the same file, while a real module
  difference is still refused."""
  ref, _ = reference
  out = tmp_path / "s.csv"
  with pytest.raises(Crash):
    run(out, progress=crash_after(2))
  meta_path = store.partial_path(str(out)) + ".meta.json"
  meta = json.load(open(meta_path))
  assert not set(store.EXECUTION_FIELDS) & set(meta["settings"]["proxy_settings"][
      "l2_norm"]["module"])
  assert {"unrolled", "relu_probe", "remat", "compact"} <= set(store.EXECUTION_FIELDS)
  for p in PROXIES:
    meta["settings"]["proxy_settings"][p]["module"].update(unrolled=False, relu_probe=None,
                                                           remat=True, compact=False)
  meta["settings"]["config"]["remat"] = True     # as --config remat=true wrote before
  assert "remat" not in runner.computing({"remat": True, "C": 4})
  json.dump(meta, open(meta_path, "w"))
  assert store.diff_settings(meta["settings"], dict(meta["settings"], seed=1)) == [
      "seed: 0 in the file vs 1 now"]
  run(out, resume=True)
  assert out.read_bytes() == ref.read_bytes()
  meta = json.load(open(str(out) + ".meta.json"))
  meta["settings"]["proxy_settings"]["l2_norm"]["module"]["C"] = 8
  assert store.diff_settings(meta["settings"], json.load(open(str(ref) + ".meta.json"))[
      "settings"]) == ["proxy_settings.l2_norm.module.C: 8 in the file vs 4 now"]


def test_a_hook_that_is_off_reads_as_absent_and_one_that_is_on_is_compared(tmp_path, reference):
  """A file written before a space gained a hook field (``gates``, ``tap``) resumes: the hook off
  (False/None) equals its absence. A file whose hook was on is refused by a run with it off."""
  ref, _ = reference
  now = json.load(open(str(ref) + ".meta.json"))["settings"]
  module = now["proxy_settings"]["l2_norm"]["module"]
  assert module["gates"] is False and module["tap"] is None
  out = tmp_path / "s.csv"
  with pytest.raises(Crash):
    run(out, progress=crash_after(2))
  meta_path = store.partial_path(str(out)) + ".meta.json"
  meta = json.load(open(meta_path))
  for p in PROXIES:
    for hook in store.HOOK_FIELDS:
      del meta["settings"]["proxy_settings"][p]["module"][hook]
  json.dump(meta, open(meta_path, "w"))
  run(out, resume=True)
  assert out.read_bytes() == ref.read_bytes()
  meta["settings"]["proxy_settings"]["l2_norm"]["module"]["gates"] = True
  assert store.diff_settings(meta["settings"], now) == [
      "proxy_settings.l2_norm.module.gates: True in the file vs False now"]


def test_a_file_written_before_its_space_gained_a_field_reads_as_its_earlier_value():
  """NB101 gained ``weight_init`` (AZ-NAS' Kaiming init) and the ``block_input`` hook after
  scores were written: such a file equals a run with ``'nasbench'`` and the hook off, and differs
  from one with ``'kaiming_normal'``; a space that did not declare the field still compares it."""
  module = {"bn": "batch", "gates": False, "num_classes": 10, "stem_channels": 128, "tap": None}
  old = {"space": "nb101", "seed": 0, "proxy_settings": {"zico": {"module": module}}}
  now = json.loads(json.dumps(old))
  now["proxy_settings"]["zico"]["module"].update(weight_init="nasbench", block_input=None)
  assert store.diff_settings(old, now) == []
  now["proxy_settings"]["zico"]["module"]["weight_init"] = "kaiming_normal"
  assert store.diff_settings(old, now) == [
      "proxy_settings.zico.module.weight_init: 'nasbench' in the file vs 'kaiming_normal' now"]
  for space in ("nb201", "no_such_space"):
    now["space"] = old["space"] = space
    now["proxy_settings"]["zico"]["module"]["weight_init"] = "nasbench"
    assert store.diff_settings(old, now) == [
        "proxy_settings.zico.module.weight_init: '<absent>' in the file vs 'nasbench' now"]


def test_corrupt_truncated_and_foreign_files_are_reported(tmp_path):
  out, part = _partial_run(tmp_path)
  data = open(part, "rb").read()
  bad = bytearray(data)
  bad[100] ^= 1
  open(part, "wb").write(bytes(bad))
  with pytest.raises(store.OutputError, match="is corrupt: the SHA-256"):
    run(out, resume=True)
  open(part, "wb").write(data[:-10])
  with pytest.raises(store.OutputError, match="is truncated"):
    run(out, resume=True)
  open(part, "wb").write(data)
  meta = open(store.meta_path(part)).read()
  open(store.meta_path(part), "w").write(meta[:50])
  with pytest.raises(store.OutputError, match="unreadable or corrupt"):
    run(out, resume=True)
  os.remove(store.meta_path(part))
  with pytest.raises(store.OutputError, match="has no metadata sidecar"):
    run(out, resume=True)
  # a sidecar whose rows disagree with the file
  m = json.loads(meta)
  m["state"]["done"]["params"] += 8
  store.write_json_atomic(store.meta_path(part), m)
  with pytest.raises(store.OutputError, match="rows per proxy"):
    run(out, resume=True)
  # a plain CSV of another tool where the output should be
  plain = tmp_path / "plain.csv"
  plain.write_text("index,arch_str,proxy,score\n1,x,params,0.5\n")
  with pytest.raises(store.OutputError, match="has no metadata sidecar"):
    run(plain, resume=True)
  with pytest.raises(store.OutputError, match="has no metadata sidecar"):
    engine.load(str(plain))


def test_complete_files_are_verified(tmp_path, reference):
  ref, _ = reference
  out = tmp_path / "c.csv"
  out.write_bytes(ref.read_bytes().replace(b",params,", b",params,1", 1))
  (tmp_path / "c.csv.meta.json").write_bytes(open(store.meta_path(str(ref)), "rb").read())
  with pytest.raises(store.OutputError, match="corrupt"):
    engine.load(str(out))
  with pytest.raises(store.OutputError, match="corrupt"):
    run(out, resume=True)


def test_other_settings_are_reported_and_nothing_is_merged(tmp_path):
  out, part = _partial_run(tmp_path)
  before = open(part, "rb").read()
  cases = [(dict(seed=1), "seed: 0 in the file vs 1 now"),
           (dict(proxies=["params"]), "proxies: ['params', 'l2_norm'] in the file vs ['params']"),
           (dict(archs=ARCHS[:40]), "n_archs: 50 in the file vs 40 now"),
           (dict(config=dict(TINY, bn="none")), "config.bn: '<absent>' in the file vs 'none'")]
  for kw, fragment in cases:
    with pytest.raises(store.OutputError) as e:
      run(out, resume=True, **kw)
    assert "was written with other settings" in str(e.value) and fragment in str(e.value)
  assert open(part, "rb").read() == before
  run(out, overwrite=True, seed=1)   # --overwrite discards the interrupted run
  assert engine.verify(str(out))["settings"]["seed"] == 1


def test_shards_merge_into_the_unsharded_file(tmp_path, reference):
  ref, ref_meta = reference
  ids = nb201.to_index(ARCHS)
  paths = []
  for i in range(3):
    share = sharding.process_share(len(ARCHS), i, 3)
    settings = engine.make_settings("nb201", ARCHS[share], PROXIES, BATCH, config=TINY,
                                    ids=ids[share], shard=(i, 3), all_archs=ARCHS)
    p = tmp_path / f"s.{i}"
    run(p, archs=ARCHS[share], ids=ids[share], settings=settings)
    paths.append(str(p))
  meta = engine.merge(paths[::-1], str(tmp_path / "m.csv"))
  assert (tmp_path / "m.csv").read_bytes() == ref.read_bytes()
  assert meta["settings"] == ref_meta["settings"]
  assert engine.verify(str(tmp_path / "m.csv"))["state"]["complete"]
  with pytest.raises(store.OutputError, match="need shards 0..2 of 3 exactly once"):
    engine.merge(paths[:2], str(tmp_path / "x.csv"))
  with pytest.raises(store.OutputError, match="given twice"):
    engine.merge(paths + paths[:1], str(tmp_path / "x.csv"))


def test_process_shares_cover_the_list_once():
  for n, count in [(10, 3), (2, 5), (15625, 7)]:
    idx = np.concatenate([np.arange(n)[sharding.process_share(n, i, count)]
                          for i in range(count)])
    np.testing.assert_array_equal(idx, np.arange(n))
  assert sharding.parse_shard("1/4") == (1, 4)
  for bad in ("4/4", "x", "1/0"):
    with pytest.raises(store.JaxnasInputError):
      sharding.parse_shard(bad)


def test_an_existing_file_is_replaced_only_with_overwrite(tmp_path, reference):
  ref, _ = reference
  out = tmp_path / "c.csv"
  out.write_bytes(ref.read_bytes())
  (tmp_path / "c.csv.meta.json").write_bytes(open(store.meta_path(str(ref)), "rb").read())
  before = out.read_bytes(), (tmp_path / "c.csv.meta.json").read_bytes()
  with pytest.raises(store.OutputError, match="exists and is complete with these settings"):
    run(out)
  with pytest.raises(store.OutputError, match="seed: 0 in the file vs 1 now"):
    run(out, seed=1)
  with pytest.raises(store.OutputError, match="exists: pass --overwrite"):
    engine.merge([str(ref)], str(out))
  assert (out.read_bytes(), (tmp_path / "c.csv.meta.json").read_bytes()) == before
  assert sorted(os.listdir(tmp_path)) == ["c.csv", "c.csv.meta.json"]


def test_darts_shards_with_quoted_arch_strings_merge(tmp_path):
  import jax
  from jaxnas.spaces import get_space
  space = get_space("darts")
  archs = np.asarray(space.sample(jax.random.key(0), 3))
  cfg, batch = dict(C=4, L=2), tiny_batch_of(2)
  paths = []
  for i in range(2):
    share = sharding.process_share(3, i, 2)
    ids = np.arange(3)[share]
    settings = engine.make_settings(space, archs[share], ["params"], batch, config=cfg, ids=ids,
                                    shard=(i, 2), all_archs=archs)
    paths.append(str(tmp_path / f"s.{i}"))
    engine.score_to_file(space, archs[share], ["params"], batch, paths[-1], ids=ids, config=cfg,
                         settings=settings)
  engine.score_to_file(space, archs, ["params"], batch, str(tmp_path / "ref.csv"), config=cfg)
  assert b'"{""normal""' in (tmp_path / "ref.csv").read_bytes()   # arch_str holds commas
  engine.merge(paths, str(tmp_path / "m.csv"))
  assert (tmp_path / "m.csv").read_bytes() == (tmp_path / "ref.csv").read_bytes()


def test_a_file_another_run_is_writing_is_refused_untouched(reference, tmp_path):
  out = tmp_path / "s.csv"
  with pytest.raises(Crash):
    run(out, progress=crash_after(2))
  part = store.partial_path(str(out))
  before = open(part, "rb").read() + b"1,cut"   # the other run's chunk in flight
  with open(part, "ab") as f:
    f.write(b"1,cut")
  settings = engine.make_settings("nb201", ARCHS, PROXIES, BATCH, config=TINY)
  writer, _ = store.open_output(str(out), settings, resume=True)   # a run holding the file
  try:
    assert writer.done == {"params": 16, "l2_norm": 0}
    for kw in (dict(resume=True), dict(overwrite=True)):
      with pytest.raises(store.OutputError, match="another run is writing .*--resume"):
        store.open_output(str(out), settings, **kw)
  finally:
    writer.close()
  assert open(part, "rb").read() == before[:-len(b"1,cut")]   # only its own truncation
  run(out, resume=True)                                       # released: it resumes
  assert out.read_bytes() == reference[0].read_bytes()


def test_a_partial_file_replaced_under_a_run_stops_it_and_keeps_its_rows(reference, tmp_path):
  """Another program replacing OUT.partial mid-run (git stash + pop of a tracked results file
  writes a new file at the path) must not send later chunks to the unlinked file: the run stops
  with an OutputError, its committed rows saved as a valid OUT.partial.recovered that resumes
  to the reference file."""
  out = tmp_path / "s.csv"
  part = store.partial_path(str(out))
  calls = []

  def replace_after_two(n):
    calls.append(n)
    if len(calls) == 2:
      data = open(part, "rb").read()[:-5]   # what the other program writes back: not ours
      os.remove(part)
      with open(part, "wb") as f:
        f.write(data)

  with pytest.raises(store.OutputError, match=r"replaced or removed .*16 committed rows .*"
                                              r"recovered.*--resume"):
    run(out, progress=replace_after_two)
  saved = part + ".recovered"
  meta = store.verify(saved)
  assert meta["state"]["rows"] == 16 and meta["state"]["done"] == {"params": 16, "l2_norm": 0}
  os.replace(saved, part)
  os.replace(store.meta_path(saved), store.meta_path(part))
  run(out, resume=True)
  assert out.read_bytes() == reference[0].read_bytes()
