"""Joint passes: proxies sharing the loss gradient (grad_norm, snip, plain), AZ-NAS' entropies or
HNAS' kernel are grouped, scored in one pass that computes the shared quantity once, equal their
scores alone, and resume per member."""

import contextlib
import json

import jax
import numpy as np
import pytest

from jaxnas import engine, spaces
from jaxnas.data import Batch
from jaxnas.engine import scoring, store
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import get_proxy, joint
from jaxnas.spaces import nb201
from tests.conftest import TINY, tiny_batch_of

FAMILY = ("grad_norm", "snip", "plain")
AZ = ("az_expressivity", "az_progressivity")
HNAS = ("hnas_trace", "hnas_cond")
ARCHS = nb201.from_index(np.arange(3, 15625, 3001))  # 6 architectures


def test_plan_groups_proxies_sharing_a_quantity_and_a_minibatch():
  batch = tiny_batch_of(4)
  names = ["grad_norm", "synflow", "snip", "nwot", "plain"]
  assert scoring.group_plan(names, batch) == [FAMILY, ("synflow",), ("nwot",)]
  per = {n: Batch(np.asarray(batch.x), np.asarray(batch.y)) for n in names}   # equal values
  assert scoring.group_plan(names, per) == [FAMILY, ("synflow",), ("nwot",)]
  per["snip"] = Batch(per["snip"].x, (per["snip"].y + 1) % 10)   # other labels: not shared
  assert scoring.group_plan(names, per) == [("grad_norm", "plain"), ("synflow",), ("snip",),
                                            ("nwot",)]
  with pytest.raises(JaxnasInputError, match="cannot be scored in one pass"):
    joint.joint(("grad_norm", "epsilon"))


@pytest.mark.parametrize("mode", ["map", "eager"])
def test_joint_scores_equal_each_proxy_scored_alone(mode):
  batch = tiny_batch_of(4)
  together = engine.score("nb201", ARCHS, list(FAMILY), batch, config=TINY, chunk_size=4,
                          mode=mode, seed=5)
  for name in FAMILY:
    alone = engine.score("nb201", ARCHS, [name], batch, config=TINY, chunk_size=4, mode=mode,
                         seed=5)[name]
    assert np.all(np.isfinite(alone)) and np.ptp(alone) > 0
    np.testing.assert_allclose(together[name], alone, rtol=2e-5, err_msg=f"{name} {mode}")
  # an identity the three share: |plain| <= snip
  assert np.all(np.abs(together["plain"]) <= together["snip"] * (1 + 1e-6))


def test_nasi_joins_the_gradient_family_and_is_unchanged():
  batch = tiny_batch_of(4)
  assert scoring.group_plan(["grad_norm", "nasi", "nasi_gaussian"], batch) == [
      ("grad_norm", "nasi"), ("nasi_gaussian",)]
  together = engine.score("nb201", ARCHS, ["grad_norm", "nasi"], batch, config=TINY, chunk_size=4,
                          seed=4)
  alone = engine.score("nb201", ARCHS, ["nasi"], batch, config=TINY, chunk_size=4, seed=4)["nasi"]
  assert np.all(np.isfinite(alone)) and np.ptp(alone) > 0
  np.testing.assert_allclose(together["nasi"], alone, rtol=2e-5)


def test_az_entropies_are_shared_and_the_components_unchanged():
  batch = tiny_batch_of(4)
  assert scoring.group_plan(["aznas"], batch) == [AZ, ("az_trainability",), ("az_complexity",)]
  together = engine.score("nb201", ARCHS, ["aznas"], batch, config=TINY, chunk_size=4, seed=2)
  for name in AZ:
    alone = engine.score("nb201", ARCHS, [name], batch, config=TINY, chunk_size=4, seed=2)[name]
    assert np.all(np.isfinite(alone))
    np.testing.assert_allclose(together[name], alone, rtol=2e-5, err_msg=name)


def test_hnas_kernel_is_shared_and_both_metrics_unchanged():
  batch = tiny_batch_of(4)
  assert scoring.group_plan(["hnas_trace", "synflow", "hnas_cond"], batch) == [HNAS, ("synflow",)]
  together = engine.score("nb201", ARCHS, list(HNAS), batch, config=TINY, chunk_size=4, seed=3)
  for name in HNAS:
    alone = engine.score("nb201", ARCHS, [name], batch, config=TINY, chunk_size=4, seed=3)[name]
    assert np.all(np.isfinite(alone)) and np.ptp(alone) > 0
    np.testing.assert_allclose(together[name], alone, rtol=2e-4, err_msg=name)


def _count(jaxpr, prim: str) -> int:
  """Equations of primitive ``prim`` in ``jaxpr`` and every jaxpr nested in its parameters."""
  n = 0
  for eqn in jaxpr.eqns:
    n += eqn.primitive.name == prim
    for v in eqn.params.values():
      for sub in (v if isinstance(v, (tuple, list)) else (v,)):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          n += _count(inner, prim)
  return n


def _convs(proxy) -> int:
  space = spaces.get_space("nb201")
  module = scoring.module_for(space, proxy, dict(TINY))
  one = scoring._one_fn(space, proxy, module)
  batch = tiny_batch_of(4)
  closed = jax.make_jaxpr(one)(ARCHS[0], np.int32(0), batch, jax.random.key(0))
  return _count(closed.jaxpr, "conv_general_dilated")


@pytest.mark.parametrize("group", [FAMILY, AZ, HNAS])
def test_a_joint_pass_computes_the_shared_quantity_once(group, monkeypatch):
  first = get_proxy(group[0])
  init = _convs(first._replace(name="init_only", fn=lambda *args: 0.0))   # initialisation's
  single = _convs(first) - init
  assert single > 0
  assert _convs(joint.joint(group)) - init == single
  # without the sharing context every member computes it again
  joint.joint.cache_clear()
  monkeypatch.setattr(joint, "sharing", contextlib.nullcontext)
  assert _convs(joint.joint(group)) - init == len(group) * single
  joint.joint.cache_clear()


def test_shared_computes_once_per_joint_call_and_every_time_outside():
  calls = []
  compute = lambda: calls.append(1) or len(calls)
  a, b = object(), object()
  assert joint.shared("t", (a,), compute) == 1 and joint.shared("t", (a,), compute) == 2
  with joint.sharing():
    assert joint.shared("t", (a,), compute) == 3
    assert joint.shared("t", (a,), compute) == 3      # same tag, same objects: reused
    assert joint.shared("t", (b,), compute) == 4      # other objects
    assert joint.shared("u", (a,), compute) == 5      # other tag
  assert joint.shared("t", (a,), compute) == 6        # the cache ended with the block


class _StopAfter:
  """A progress callback that raises on its ``n``-th call (a kill between two members' rows)."""

  def __init__(self, n):
    self.n = n

  def __call__(self, k):
    self.n -= 1
    if self.n == 0:
      raise KeyboardInterrupt


def _proxies_in(path):
  return [line.split(b",")[-2].decode() for line in path.read_bytes().splitlines()[1:]]


@pytest.fixture(scope="module")
def whole_joint_file(tmp_path_factory):
  """An uninterrupted joint run over 6 architectures in chunks of 2 (members interleave)."""
  whole = tmp_path_factory.mktemp("joint") / "whole.csv"
  meta = engine.score_to_file("nb201", ARCHS, list(FAMILY), tiny_batch_of(4), str(whole),
                              **_KW)
  assert meta["run"]["joint"] == {n: list(FAMILY) for n in FAMILY}
  return whole


_KW = dict(config=TINY, chunk_size=2, seed=1, mode="map")


def test_a_complete_joint_file_is_proxy_major(whole_joint_file):
  assert _proxies_in(whole_joint_file) == [p for p in FAMILY for _ in range(6)]
  meta, scores = store.load(str(whole_joint_file))
  assert meta["state"]["done"] == {p: 6 for p in FAMILY}
  alone = engine.score("nb201", ARCHS, ["snip"], tiny_batch_of(4), config=TINY, seed=1, mode="map")
  np.testing.assert_allclose(scores["snip"][1], alone["snip"], rtol=1e-5)


@pytest.mark.parametrize("commits", [1, 2, 4, 8])   # chunks committed before the kill
def test_a_joint_file_resumes_members_left_at_different_rows(whole_joint_file, tmp_path,
                                                             commits):
  cut = tmp_path / "cut.csv"
  with pytest.raises(KeyboardInterrupt):
    engine.score_to_file("nb201", ARCHS, list(FAMILY), tiny_batch_of(4), str(cut),
                         progress=_StopAfter(commits), **_KW)
  part = tmp_path / "cut.csv.partial"
  done = json.loads((tmp_path / "cut.csv.partial.meta.json").read_text())["state"]["done"]
  assert sum(done.values()) == 2 * commits
  want = [FAMILY[k % 3] for k in range(commits) for _ in range(2)]   # interleaved chunks
  assert _proxies_in(part) == want
  engine.score_to_file("nb201", ARCHS, list(FAMILY), tiny_batch_of(4), str(cut), resume=True,
                       **_KW)
  assert cut.read_bytes() == whole_joint_file.read_bytes()
  assert not part.exists()


def test_a_cut_chunk_of_any_member_is_dropped_and_a_foreign_row_refused(whole_joint_file,
                                                                       tmp_path):
  cut = tmp_path / "cut.csv"
  with pytest.raises(KeyboardInterrupt):   # grad_norm[0:2] committed, then a kill mid-snip
    engine.score_to_file("nb201", ARCHS, list(FAMILY), tiny_batch_of(4), str(cut),
                         progress=_StopAfter(1), **_KW)
  part = tmp_path / "cut.csv.partial"
  committed = part.read_bytes()
  rows = whole_joint_file.read_bytes().splitlines(keepends=True)
  snip_row = rows[1 + 6]                   # snip's first row, as the killed write left it
  part.write_bytes(committed + snip_row + snip_row[:9])
  engine.score_to_file("nb201", ARCHS, list(FAMILY), tiny_batch_of(4), str(cut), resume=True,
                       **_KW)
  assert cut.read_bytes() == whole_joint_file.read_bytes()
  cut.unlink()
  (tmp_path / "cut.csv.meta.json").unlink()
  with pytest.raises(KeyboardInterrupt):
    engine.score_to_file("nb201", ARCHS, list(FAMILY), tiny_batch_of(4), str(cut),
                         progress=_StopAfter(1), **_KW)
  part.write_bytes(part.read_bytes() + rows[1])   # grad_norm's committed row 0 again
  with pytest.raises(store.OutputError, match="not the next architecture"):
    engine.score_to_file("nb201", ARCHS, list(FAMILY), tiny_batch_of(4), str(cut), resume=True,
                         **_KW)


def test_a_kill_while_finishing_a_joint_file_is_finished_by_resume(whole_joint_file, tmp_path,
                                                                   monkeypatch):
  cut = tmp_path / "cut.csv"
  real = store.os.replace

  def killed(src, dst):
    if str(dst) == str(cut):
      raise KeyboardInterrupt   # the proxy-major copy and OUT's sidecar are written, not renamed
    return real(src, dst)

  monkeypatch.setattr(store.os, "replace", killed)
  with pytest.raises(KeyboardInterrupt):
    engine.score_to_file("nb201", ARCHS, list(FAMILY), tiny_batch_of(4), str(cut), **_KW)
  monkeypatch.setattr(store.os, "replace", real)
  assert not cut.exists() and (tmp_path / "cut.csv.partial").exists()
  engine.score_to_file("nb201", ARCHS, list(FAMILY), tiny_batch_of(4), str(cut), resume=True,
                       **_KW)
  assert cut.read_bytes() == whole_joint_file.read_bytes()
  assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.csv", "cut.csv.meta.json"]
