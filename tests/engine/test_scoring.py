"""The scoring engine: modes agree, scores do not depend on chunking, order, start or mode, the
auto mode reads the traced program, and the shared build matches the discrete network."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import engine, spaces
from jaxnas.engine import memory, scoring
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import Proxy, get_proxy
from jaxnas.spaces import nb201
from tests.conftest import TINY, tiny_batch_of

ARCHS = nb201.from_index(np.arange(0, 15625, 1301))  # 13 architectures


def test_modes_agree_on_size_proxies_and_auto_picks_vmap():
  batch = tiny_batch_of(2)
  want_p = nb201.count_params(ARCHS, **TINY) / 1e6          # numpy, exact integers
  want_f = nb201.count_flops(ARCHS, resolution=8, **TINY) / 1e6
  for mode in scoring.MODES:
    out = engine.score("nb201", ARCHS, ["params", "flops"], batch, config=TINY, chunk_size=4,
                       mode=mode, group=2)
    np.testing.assert_allclose(out["params"], want_p, rtol=1e-6, err_msg=mode)
    np.testing.assert_allclose(out["flops"], want_f, rtol=1e-6, err_msg=mode)
  fn = scoring.make_score_fn(spaces.get_space("nb201"), get_proxy("params"), TINY, "auto")
  fn(ARCHS[:4], np.arange(4, dtype=np.int32), batch, jax.random.key(0))
  assert fn.info["mode"] == "vmap" and fn.info["branches"] is False


def test_conditional_detection_and_mode_resolution():
  def branchy(i, x):
    body = lambda c, _: (jax.lax.switch(i, [lambda v: v, lambda v: -v], c), None)
    return jax.lax.scan(body, x, None, length=2)[0]
  assert scoring._has_conditional(jax.make_jaxpr(branchy)(1, 2.0).jaxpr)   # nested in a scan
  assert not scoring._has_conditional(jax.make_jaxpr(lambda x: jnp.sin(x) * 2)(1.0).jaxpr)
  assert scoring.resolve_mode("auto", True, "cpu") == "map"
  assert scoring.resolve_mode("auto", True, "cpu", unrolls=True) == "eager"
  assert scoring.resolve_mode("auto", True, "gpu", unrolls=True) == "vmap"
  assert scoring.resolve_mode("auto", False, "gpu") == "vmap"
  assert scoring.resolve_mode("hybrid", False, "cpu") == "hybrid"


def _forward_proxy():
  """A test proxy: the sum of the logits of the shared network (switches on the architecture)."""
  def fn(net, variables, batch, key):
    return jnp.sum(net.apply(variables, batch.x))
  return Proxy("logit_sum", fn)


def test_auto_maps_branching_proxies_and_shared_build_equals_discrete_network(monkeypatch):
  proxy = _forward_proxy()
  monkeypatch.setattr(scoring, "get_proxy", lambda name: proxy)
  batch = tiny_batch_of(4)
  archs = ARCHS[:4]
  info = {}
  got = np.concatenate([v for _, _, v in scoring.iter_scores(
      "nb201", archs, "logit_sum", batch, seed=3, config=TINY, chunk_size=2, report=info)])
  assert info["mode"] == "map" and info["branches"] is True
  # independent computation: the discrete network of each architecture, with its parameters
  # taken from the shared tree initialised from fold_in(key, benchmark index)
  init = jax.jit(nb201.NB201Net(**TINY).init)
  for arch, g in list(zip(archs, got))[1:3]:
    k_init, _ = jax.random.split(jax.random.fold_in(jax.random.key(3), nb201.to_index(arch)))
    v = init(k_init, batch.x, arch)
    disc = nb201.NB201Net(**TINY, fixed_arch=tuple(int(o) for o in arch))
    vd = {k: nb201.discrete_params(t, arch) for k, t in v.items()}
    want = float(jnp.sum(jax.jit(disc.apply)(vd, batch.x)))
    np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-5)


def test_scores_do_not_depend_on_chunking_order_start_or_mode():
  batch = tiny_batch_of(2)
  a = engine.score("nb201", ARCHS, ["l2_norm"], batch, seed=5, config=TINY, chunk_size=4,
                   mode="map")["l2_norm"]
  rev = engine.score("nb201", ARCHS[::-1], ["l2_norm"], batch, seed=5, config=TINY,
                     chunk_size=5, mode="vmap")["l2_norm"][::-1]
  np.testing.assert_allclose(rev, a, rtol=1e-6)
  tail = list(scoring.iter_scores("nb201", ARCHS, "l2_norm", batch, seed=5, config=TINY,
                                  chunk_size=4, mode="map", start=6))
  assert [(lo, hi) for lo, hi, _ in tail] == [(6, 10), (10, 13)]
  np.testing.assert_array_equal(np.concatenate([v for *_, v in tail]), a[6:])
  # independent: the proxy on one architecture, initialised by hand
  proxy, space = get_proxy("l2_norm"), spaces.get_space("nb201")
  arch = ARCHS[7]
  k_init, k_proxy = jax.random.split(jax.random.fold_in(jax.random.key(5), nb201.to_index(arch)))
  net = spaces.Network(space, nb201.NB201Net(**TINY), arch)
  b1 = scoring.default_batch_for(proxy, batch)
  want = jax.jit(lambda: proxy.fn(net, net.init(k_init, b1.x), b1, k_proxy))()
  np.testing.assert_allclose(a[7], float(want), rtol=1e-6)
  assert len(set(np.round(a, 6))) > 5   # per-architecture values, not one repeated number


def test_call_sizes_and_chunks():
  assert scoring.call_size(100, 64, 1) == 64
  assert scoring.call_size(5, 64, 4) == 8        # small runs compile for n, rounded to devices
  assert scoring.call_size(100, 30, 4) == 32
  assert scoring.chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(mode="fast"), "unknown scoring mode 'fast'"),
    (dict(chunk_size=0), "chunk size must be a positive integer, got 0"),
    (dict(archs=np.zeros((3, 5), np.int32)), "archs must have shape (n, 6), got (3, 5)"),
    (dict(archs=np.zeros((3, 6))), "archs must hold integer op indices"),
    (dict(archs=np.zeros((0, 6), np.int32)), "no architectures to score"),
    (dict(ids=np.arange(2)), "ids must have shape (13,), got (2,)"),
    (dict(mode="hybrid", group=0), "group must be a positive integer, got 0"),
    (dict(devices=99), "devices must be between 1 and the"),
])
def test_bad_input(kwargs, fragment):
  args = dict(archs=ARCHS, mode="auto")
  args.update(kwargs)
  archs = args.pop("archs")
  with pytest.raises(JaxnasInputError) as e:
    engine.score("nb201", archs, ["params"], tiny_batch_of(2), config=TINY, **args)
  assert fragment in str(e.value)


def test_per_proxy_minibatches_equal_scoring_each_proxy_alone():
  """``paper_batches`` gives each proxy its paper's batch size; a dict of minibatches scores each
  proxy exactly as scoring it alone with its own minibatch."""
  from jaxnas import data
  draw = lambda n: data.minibatch("gaussian", n, seed=3, resolution=8)
  per = scoring.paper_batches(["params", "epsilon", "grad_norm"], draw)
  assert {k: v.x.shape[0] for k, v in per.items()} == {"params": 1, "epsilon": 256,
                                                       "grad_norm": 64}
  archs = ARCHS[:3]
  both = engine.score("nb201", archs, ["epsilon", "grad_norm"], per, config=TINY, chunk_size=4)
  for name in ("epsilon", "grad_norm"):
    alone = engine.score("nb201", archs, [name], draw(per[name].x.shape[0]), config=TINY,
                         chunk_size=4)[name]
    np.testing.assert_array_equal(both[name], alone, err_msg=name)
  # a Batch gives each proxy a prefix; too few images, or a proxy missing from the dict, is an error
  prefix = scoring.paper_batches(["grad_norm"], draw(100))["grad_norm"]
  np.testing.assert_array_equal(prefix.x, draw(100).x[:64])
  with pytest.raises(JaxnasInputError, match="proxy 'epsilon' uses 256 images but the minibatch "
                                             "holds 100"):
    scoring.paper_batches(["epsilon"], draw(100))
  with pytest.raises(JaxnasInputError, match="no minibatch for proxy 'snip'"):
    engine.score("nb201", archs, ["snip"], per, config=TINY)


@pytest.mark.parametrize("name,big_mode", [("logit_sum", "map"), ("grad_norm", "eager"),
                                           ("tenas_ntk_cond", "eager")])
def test_eager_executor_equals_map_and_auto_chooses_it_for_big_networks(monkeypatch, name,
                                                                        big_mode):
  """The 'eager' executor (Python loop, unrolled network) gives the 'map' scores; 'auto' on CPU
  picks it for a proxy registered cpu_eager (grad_norm; tenas_ntk_cond, whose B pullbacks
  measured 4.6x faster eagerly), from EAGER_MIN_FLOPS forward FLOPs per minibatch; another
  branching proxy stays on 'map'."""
  if name == "logit_sum":
    proxy = _forward_proxy()
    monkeypatch.setattr(scoring, "get_proxy", lambda n: proxy)
  batch = tiny_batch_of(8)
  archs = np.concatenate([np.zeros((1, 6), np.int32), ARCHS[1:3]])   # all 'none' first
  run = lambda mode: engine.score("nb201", archs, [name], batch, seed=2, config=TINY,
                                  chunk_size=3, mode=mode)[name]
  want = run("map")
  np.testing.assert_allclose(run("eager"), want, rtol=1e-5, atol=1e-7)
  info = {}
  if name == "logit_sum":   # (cheap to compile once more)
    for _ in scoring.iter_scores("nb201", archs, name, batch, seed=2, config=TINY, chunk_size=3,
                                 report=info):
      pass
    assert info["mode"] == "map"     # tiny networks: below the threshold
  scoring._cached_score_fn.cache_clear()
  monkeypatch.setattr(scoring, "EAGER_MIN_FLOPS", 0.0)
  got = np.concatenate([v for *_, v in scoring.iter_scores(
      "nb201", archs, name, batch, seed=2, config=TINY, chunk_size=3, report=info)])
  assert info["mode"] == big_mode and info["branches"] is True
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  scoring._cached_score_fn.cache_clear()


def test_auto_runs_eagerly_what_the_compiled_program_cannot_fit(monkeypatch):
  """'auto' compiles the scorer, compares XLA's memory analysis of it with what the device has,
  and runs the 'eager' executor (one discrete network at a time) when it does not fit: same
  scores, the comparison recorded in info['memory']."""
  proxy = _forward_proxy()
  monkeypatch.setattr(scoring, "get_proxy", lambda n: proxy)
  batch, archs = tiny_batch_of(4), ARCHS[:3]
  want = engine.score("nb201", archs, ["logit_sum"], batch, seed=1, config=TINY,
                      mode="map")["logit_sum"]
  for have, mode in ((1, "eager"), (2**40, "map")):
    scoring._cached_score_fn.cache_clear()
    monkeypatch.setattr(memory, "available_bytes", lambda device, have=have: have)
    info = {}
    got = np.concatenate([v for *_, v in scoring.iter_scores(
        "nb201", archs, "logit_sum", batch, seed=1, config=TINY, chunk_size=2, report=info)])
    assert info["mode"] == mode, info
    assert ("available: eager" in info["memory"]) == (mode == "eager")
    need = float(info["memory"].split(" needs ")[1].split(" GiB")[0])
    assert 0 < need < 1   # a tiny network's program: some bytes, well under a GiB
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg=mode)
  scoring._cached_score_fn.cache_clear()


def test_memory_figures(tmp_path):
  """What a compiled program needs (at least its arguments and outputs) and what a device has
  (an accelerator's limit less what is in use; on CPU Linux's MemAvailable; else unknown)."""
  x = jnp.ones((256, 256), jnp.float32)
  need = memory.program_bytes(jax.jit(lambda a: a @ a + 1).lower(x).compile())
  assert need is None or need >= 2 * x.nbytes
  info = tmp_path / "meminfo"
  info.write_text("MemTotal:       24000000 kB\nMemAvailable:    1234 kB\n")
  cpu = type("D", (), {"platform": "cpu", "memory_stats": lambda self: None})()
  assert memory.available_bytes(cpu, str(info)) == 1234 * 1024
  assert memory.available_bytes(cpu, str(tmp_path / "absent")) is None
  gpu = type("D", (), {"platform": "gpu",
                       "memory_stats": lambda self: {"bytes_limit": 100, "bytes_in_use": 30}})()
  assert memory.available_bytes(gpu) == 70
  bare = type("D", (), {"platform": "tpu", "memory_stats": lambda self: None})()
  assert memory.available_bytes(bare) is None

  def refuse(self):
    raise NotImplementedError("no statistics")
  # a client without allocator statistics: CPU falls back to the OS, an accelerator is unknown
  silent_cpu = type("D", (), {"platform": "cpu", "memory_stats": refuse})()
  assert memory.available_bytes(silent_cpu, str(info)) == 1234 * 1024
  assert memory.available_bytes(type("D", (), {"platform": "gpu", "memory_stats": refuse})()) is None
  assert memory.available_bytes(object(), str(info)) is None      # no memory_stats, no platform
  no_analysis = type("C", (), {"memory_analysis": lambda self: (_ for _ in ()).throw(
      RuntimeError("unsupported"))})()
  assert memory.program_bytes(no_analysis) is None
  assert memory.gib(3 * 2**29) == "1.5 GiB"


def test_compiled_programs_are_released_near_the_map_limit(tmp_path, monkeypatch):
  """At ``fraction`` of Linux's memory-map limit (XLA:CPU maps three per compiled kernel; a
  process at the limit dies in its next compilation) JAX's compiled programs are dropped with a
  warning naming the count and the remedy; below it nothing is dropped and nothing said. The
  engine checks before it compiles, and a release leaves the scores unchanged."""
  held, most = memory.memory_maps()            # this process, read from /proc
  assert 0 < held < most
  maps, limit = tmp_path / "maps", tmp_path / "max_map_count"
  limit.write_text("100\n")
  files = dict(maps=str(maps), limit=str(limit))
  assert memory.memory_maps(maps=str(tmp_path / "absent")) is None
  f = jax.jit(lambda a: a + 1)
  f(1.0)
  maps.write_text("m\n" * 79)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    assert not memory.release_compiled_near_map_limit(**files)
  assert f._cache_size() == 1
  maps.write_text("m\n" * 80)
  with pytest.warns(RuntimeWarning, match=r"80 memory maps of the 100 .*vm\.max_map_count"):
    assert memory.release_compiled_near_map_limit(**files)
  assert f._cache_size() == 0

  batch, archs = tiny_batch_of(2), ARCHS[:2]
  want = engine.score("nb201", archs, ["synflow"], batch, config=TINY)["synflow"]
  monkeypatch.setattr(memory, "memory_maps", lambda: (52_424, 65_530))
  with pytest.warns(RuntimeWarning, match="52,424 memory maps of the 65,530"):
    got = engine.score("nb201", archs, ["synflow"], batch, config=TINY)["synflow"]
  np.testing.assert_array_equal(got, want)


def test_eager_executor_refuses_what_it_cannot_run():
  batch = tiny_batch_of(2)
  scanned = spaces.get_space("darts")._replace(unrolls=False)   # a space that does not unroll
  with pytest.raises(JaxnasInputError, match="'darts' does not"):
    engine.score(scanned, scanned.sample(jax.random.key(0), 1), ["grad_norm"], batch,
                 mode="eager")
  fn = scoring.make_score_fn(spaces.get_space("nb201"), get_proxy("grad_norm"), TINY, "eager")
  with pytest.raises(JaxnasInputError, match="lower"):
    fn.lower(ARCHS[:1], np.zeros(1, np.int32), batch, jax.random.key(0))


def test_eager_executor_does_not_pad_the_last_chunk(monkeypatch):
  """Compiled modes pad a short last chunk to the compiled size; the eager executor scores only
  the architectures asked for (5 in chunks of 3: 5 proxy calls, not 6)."""
  calls = []
  base = _forward_proxy()

  def counted(net, variables, batch, key):
    calls.append(1)
    return base.fn(net, variables, batch, key)
  monkeypatch.setattr(scoring, "get_proxy", lambda n: base._replace(fn=counted))
  out = engine.score("nb201", ARCHS[:5], ["logit_sum"], tiny_batch_of(2), config=TINY,
                     chunk_size=3, mode="eager")["logit_sum"]
  assert len(calls) == 5 and out.shape == (5,) and np.all(np.isfinite(out))
