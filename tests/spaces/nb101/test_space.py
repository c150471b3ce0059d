"""NB101 as a registered space: encoding, traced vertex widths, counts, the model against the
discrete network, proxies through the engine."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import engine
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import get_proxy, supported_proxies
from jaxnas.spaces import get_space, list_spaces
from jaxnas.spaces.nb101 import counts as K
from jaxnas.spaces.nb101 import net as N
from jaxnas.spaces.nb101 import space as SP
from jaxnas.spaces.nb101 import spec as S
from tests.conftest import tiny_batch_of
from tests.spaces.nb101.common import INCEPTION, TRIVIAL, csv_rows, csv_spec, to_masked_layout

CFG = dict(stem_channels=8, num_stacks=2, modules_per_stack=1)
SPACE = get_space("nb101") if "nb101" in list_spaces() else None


def test_registered():
  assert SPACE is not None and SPACE.arch_shape == (56,) and SPACE.num_archs is None


@pytest.mark.parametrize("spec", [INCEPTION, TRIVIAL])
def test_encoding_round_trips(spec):
  a = SPACE.encode(spec)
  assert a.shape == (56,) and a.dtype == np.int32
  s = SPACE.decode(a)
  assert np.array_equal(SPACE.encode(s), a)
  assert np.array_equal(SPACE.encode((spec.matrix, list(spec.ops))), a)
  assert SP.to_spec(a) == S.prune(spec)


def test_bad_encodings_name_the_value():
  with pytest.raises(JaxnasInputError, match="not 'matrix digits"):
    SPACE.encode("0110")
  with pytest.raises(JaxnasInputError, match="input does not reach the output"):
    SPACE.encode(([[0, 0], [0, 0]], ["input", "output"]))
  a = SPACE.encode(TRIVIAL).copy()
  a[49 + 3] = 4     # an op on a dead slot: not the canonical (pruned) encoding
  with pytest.raises(JaxnasInputError, match="not canonical|no input/output"):
    SPACE.encode(a)


def test_traced_widths_equal_nasbench_on_all_csv_rows_and_samples():
  archs = [SPACE.encode((r["matrix"], r["ops"])) for r in csv_rows()]
  archs += list(SPACE.sample(jax.random.key(0), 40))
  fn = jax.jit(jax.vmap(lambda a: SP.traced_encoding(a, (128, 256, 512))))
  got = fn(jnp.asarray(np.stack(archs)))
  for i, a in enumerate(archs):
    want = S.encode(SP.to_spec(a), (128, 256, 512))
    for f in ("matrix", "ops", "vc", "offsets"):
      np.testing.assert_array_equal(np.asarray(getattr(got, f))[i], getattr(want, f), err_msg=f)


def test_counts_equal_the_reference_columns_eagerly_and_traced():
  rows = csv_rows()
  archs = np.stack([SPACE.encode((r["matrix"], r["ops"])) for r in rows])
  want = np.array([float(r["naslib_params"]) * 1e6 for r in rows])
  np.testing.assert_allclose(SPACE.count_params(archs), want, rtol=0, atol=0.5)
  traced = jax.jit(jax.vmap(lambda a: SPACE.count_params(a)))(archs[:5])
  np.testing.assert_allclose(traced, want[:5], rtol=1e-6)
  f = SPACE.count_flops(archs[:3])
  np.testing.assert_allclose(f / 1e6, [float(r["naslib_flops"]) for r in rows[:3]], rtol=1e-6)


@pytest.mark.parametrize("row", [0, 1, 33])
def test_model_equals_the_discrete_network_with_its_weights(row):
  """Logits and loss gradients of the space's network equal the discrete NB101 network's built
  independently from the same weights; initialised entries outside the spec are exactly 0."""
  spec = csv_spec(row)
  a = SPACE.encode(spec)
  x = tiny_batch_of(4).x
  m = SPACE.model(**CFG)
  v = m.init(jax.random.key(row), x, a)
  dp = N.discrete_params(to_masked_layout(v["params"]), spec, **CFG)
  disc = N.NB101Net(spec, num_classes=10, **CFG)
  np.testing.assert_allclose(m.apply(v, x, a), disc.apply({"params": dp}, x), rtol=1e-4,
                             atol=1e-5)
  nz = sum(int(np.count_nonzero(l)) for l in jax.tree_util.tree_leaves(v["params"]))
  nz_disc = sum(int(np.count_nonzero(l)) for l in jax.tree_util.tree_leaves(dp))
  assert nz == nz_disc   # nothing outside the discrete network's layers is nonzero
  assert sum(int(l.size) for l in jax.tree_util.tree_leaves(dp)) == K.params(spec, **CFG)


def test_grad_norm_through_the_engine_equals_the_discrete_network():
  """The engine's grad_norm on NB101 (compiled 'map' and 'eager' executors) = sum of per-layer gradient norms of the discrete network
  (independent build and parameter layout), same weights and batch."""
  archs = np.stack([SPACE.encode(csv_spec(i)) for i in (0, 2, 5)])
  batch = tiny_batch_of(8)
  got = engine.score(SPACE, archs, ["grad_norm"], batch, config=CFG, chunk_size=3,
                     mode="map")["grad_norm"]
  # the 'eager' executor: unrolled networks, one compiled initialiser taking the architecture
  eager = engine.score(SPACE, archs[:1], ["grad_norm"], batch, config=CFG, chunk_size=1,
                       mode="eager")["grad_norm"]
  key = jax.random.key(0)
  for i, a in enumerate(archs):
    spec = SP.to_spec(a)
    v = SPACE.model(**CFG).init(jax.random.split(jax.random.fold_in(key, i))[0], batch.x, a)
    disc = N.NB101Net(spec, num_classes=10, **CFG)
    dp = N.discrete_params(to_masked_layout(v["params"]), spec, **CFG)

    def loss(p):
      logits = disc.apply({"params": p}, batch.x)
      return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), batch.y[:, None], 1))
    g = jax.grad(loss)(dp)
    want = sum(float(jnp.linalg.norm(leaf)) for path, leaf in
               jax.tree_util.tree_leaves_with_path(g) if "kernel" in jax.tree_util.keystr(path))
    np.testing.assert_allclose(got[i], want, rtol=2e-4)
    if i < len(eager):
      np.testing.assert_allclose(eager[i], want, rtol=2e-4)


def test_nwot_on_the_unrolled_network_equals_codes_of_every_relu_of_the_discrete_one(
    monkeypatch):
  """NASWOT on NB101 (the ReLU probe of the unrolled build, engine's 'eager' executor) equals
  log|det K| in float64 with K summed over every ReLU input of the discrete network (recorded by
  wrapping ``jax.nn.relu``; independent build and layout), same weights and batch; the masked
  build refuses the probe by name."""
  archs = np.stack([SPACE.encode(csv_spec(i)) for i in (0, 3)])
  batch = tiny_batch_of(8)
  got = engine.score(SPACE, archs, ["nwot"], batch, config=CFG, mode="eager")["nwot"]
  key = jax.random.key(0)
  relu = jax.nn.relu
  for i, a in enumerate(archs):
    spec = SP.to_spec(a)
    v = SPACE.model(**CFG).init(jax.random.split(jax.random.fold_in(key, i))[0], batch.x, a)
    dp = N.discrete_params(to_masked_layout(v["params"]), spec, **CFG)
    seen = []
    monkeypatch.setattr(jax.nn, "relu", lambda h: seen.append(np.asarray(h)) or relu(h))
    N.NB101Net(spec, num_classes=10, **CFG).apply({"params": dp}, batch.x)
    monkeypatch.setattr(jax.nn, "relu", relu)
    n_relu = 1 + sum(1 for t in range(1, spec.num_vertices) if spec.array()[0, t]) + sum(
        1 for op in spec.ops[1:-1] if op != "maxpool3x3")   # stem, projections, convs; 1 cell
    assert len(seen) == CFG["num_stacks"] * (n_relu - 1) + 1
    codes = [(h.reshape(len(h), -1) > 0).astype(np.float64) for h in seen]
    k = sum(c @ c.T + (1 - c) @ (1 - c).T for c in codes)
    np.testing.assert_allclose(got[i], np.linalg.slogdet(k)[1], rtol=1e-5)
  with pytest.raises(JaxnasInputError, match="relu_probe.*mode='eager'"):
    engine.score(SPACE, archs, ["nwot"], batch, config=CFG, mode="map")


def test_fisher_on_the_unrolled_network_equals_perturbed_convs_of_the_discrete_one(monkeypatch):
  """fisher on NB101 (the gates of the unrolled build, engine's 'eager' executor) equals
  sum_l n_l sum_c 1/2 mean_n (sum_hw a dL/da)^2 over every conv and the classifier of the
  discrete network (``a`` the conv output before BN, dL/da by additive zero perturbations on
  ``ops.conv2d``'s outputs and the logits; ``n_l`` the weights per output channel of the kernel
  it was called with; independent build and layout), same weights and batch; one gate per layer
  of the discrete network at its width; the masked build refuses gates by name."""
  from jaxnas.spaces import ops as L
  archs = np.stack([SPACE.encode(csv_spec(i)) for i in (0, 3)])
  batch = tiny_batch_of(8)
  got = engine.score(SPACE, archs, ["fisher"], batch, config=CFG, mode="eager")["fisher"]
  key = jax.random.key(0)
  conv = L.conv2d
  for i, a in enumerate(archs):
    spec = SP.to_spec(a)
    v = SPACE.model(**CFG).init(jax.random.split(jax.random.fold_in(key, i))[0], batch.x, a)
    dp = N.discrete_params(to_masked_layout(v["params"]), spec, **CFG)
    disc = N.NB101Net(spec, num_classes=10, **CFG)
    acts, fans = [], []

    def perturbed(eps):
      acts.clear()
      fans.clear()

      def conv_plus(x, kernel, *args, **kw):
        y = conv(x, kernel, *args, **kw)
        acts.append(y)
        fans.append(int(np.prod(kernel.shape[:-1])))
        return y + eps[len(acts) - 1]
      monkeypatch.setattr(L, "conv2d", conv_plus)
      try:
        return disc.apply({"params": dp}, batch.x) + eps[-1]
      finally:
        monkeypatch.setattr(L, "conv2d", conv)

    logits = perturbed([0.0] * 64)
    a_np = [np.asarray(h, np.float64) for h in acts] + [np.asarray(logits, np.float64)]
    fan_np = fans + [dp["head"]["dense"]["kernel"].shape[0]]
    eps = [jnp.zeros(h.shape, jnp.float32) for h in a_np]
    dlda = jax.jit(jax.grad(lambda e: _ce(perturbed(e), batch.y)))(eps)
    want = 0.0
    for h, d, n in zip(a_np, dlda, fan_np):
      g = np.sum(h * np.asarray(d, np.float64), axis=tuple(range(1, h.ndim - 1)))   # (B, C)
      want += n * np.sum(0.5 * np.mean(g**2, axis=0))
    np.testing.assert_allclose(got[i], want, rtol=1e-4)
    # one gate per conv/dense layer of the discrete network, each with its real kernel
    m = SPACE.model(**CFG).clone(unrolled=True, gates=True)
    out = jax.eval_shape(lambda: m.init(key, batch.x, a, mutable=True))
    gate_kernels = out["intermediates"]["gate_kernels"]
    assert sorted(out["gates"]) == sorted(gate_kernels)
    assert all(out["gates"][k].shape == (8, gate_kernels[k].shape[-1]) for k in gate_kernels)
    disc_kernels = [l.shape for p, l in jax.tree_util.tree_leaves_with_path(dp)
                    if "kernel" in jax.tree_util.keystr(p)]
    assert len(a_np) == len(disc_kernels) == len(gate_kernels)
    assert sorted(k.shape for k in gate_kernels.values()) == sorted(disc_kernels)
  with pytest.raises(JaxnasInputError, match="gates.*mode='eager'"):
    engine.score(SPACE, archs, ["fisher"], batch, config=CFG, mode="map")


def _ce(logits, y):
  return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))


def test_supported_proxies_run_finite_and_chunking_independent():
  ok = supported_proxies(SPACE)
  assert {"params", "flops", "synflow", "grad_norm", "snip", "jacob_cov", "l2_norm",
          "nwot", "swap", "tenas_regions", "fisher"} <= set(ok)
  assert "zen" not in ok   # no sown features (yet)
  assert "epsilon" in ok                            # the network has a 'bn' option
  archs = np.stack([SPACE.encode(csv_spec(i)) for i in (0, 3)])
  batch = tiny_batch_of(8)
  names = ("params", "synflow", "snip", "jacob_cov")
  a = engine.score(SPACE, archs, names, batch, config=CFG, chunk_size=2, mode="map")
  for name in names:
    assert np.all(np.isfinite(a[name])), name
  # chunking (one compiled program per chunk size): checked on one proxy, as for NB201 in
  # tests/engine/test_scoring.py
  b = engine.score(SPACE, archs, ["snip"], batch, config=CFG, chunk_size=1, mode="map")["snip"]
  np.testing.assert_allclose(a["snip"], b, rtol=1e-5)
  p = engine.score(SPACE, archs, ["params"], batch, config=CFG)["params"]
  np.testing.assert_allclose(p * 1e6, [K.params(SP.to_spec(x), **CFG) for x in archs], rtol=1e-6)
  with pytest.raises(JaxnasInputError, match="'zen' needs 'features'.*'nb101'"):
    engine.score(SPACE, archs, ["zen"], batch, config=CFG)
  assert get_proxy("synflow").needs <= SPACE.capabilities()


def test_nb101_truth_and_cli_round_trip(tmp_path, capsys):
  """``--archs-file`` takes the shared CSV (matrix, ops columns); ``index`` is the row;
  ``correlate --truth nb101_val`` looks each row's cell up (rows sharing a cell: their mean)."""
  import csv
  from jaxnas import benchmarks, cli
  rows = csv_rows()
  vals = np.array([float(r["val_accuracy"]) for r in rows])
  strs = benchmarks.nb101.arch_strs()
  got = benchmarks.nb101.accuracy_of(strs)
  for i in range(len(rows)):
    same = [j for j in range(len(rows)) if strs[j] == strs[i]]
    assert got[i] == pytest.approx(vals[same].mean())
  src = tmp_path / "nb101.csv"
  with open(src, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["matrix", "ops", "val_accuracy"])
    for r in rows[:6]:
      w.writerow([r["matrix"], r["ops"], r["val_accuracy"]])
  out = tmp_path / "s.csv"
  assert cli.main(["score", "--space", "nb101", "--archs-file", str(src), "--proxies", "params",
                   "--config", "stem_channels=8,num_stacks=2,modules_per_stack=1", "--out",
                   str(out), "--no-progress"]) == 0
  with open(out, newline="") as f:
    scored = list(csv.DictReader(f))
  assert [int(r["index"]) for r in scored] == list(range(6))
  assert [r["arch_str"] for r in scored] == strs[:6]
  capsys.readouterr()
  assert cli.main(["correlate", "--scores", str(out), "--truth", "nb101_val"]) == 0
  want = benchmarks.spearman(np.array([float(r["score"]) for r in scored]), got[:6])
  line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("params")][0]
  assert f"{want:.3f}" in line


@pytest.mark.parametrize("row", [33])
def test_unrolled_equals_masked_outputs_and_gradients(row):
  """``unrolled=True`` on a concrete spec (real widths, only its layers) gives the masked build's
  logits and loss gradients, zeros outside the spec included."""
  a = SPACE.encode(csv_spec(row))
  x = tiny_batch_of(4).x
  m = SPACE.model(**CFG)
  v = m.init(jax.random.key(row), x, a)
  un = m.clone(unrolled=True)
  np.testing.assert_allclose(un.apply(v, x, a), jax.jit(m.apply)(v, x, a), rtol=1e-4, atol=1e-5)
  loss = lambda mod: (lambda p: jnp.sum(jnp.sin(mod.apply({"params": p}, x, a))))
  g_un = jax.grad(loss(un))(v["params"])
  g_m = jax.jit(jax.grad(loss(m)))(v["params"])
  for (path, gu), gm in zip(jax.tree_util.tree_leaves_with_path(g_un),
                            jax.tree_util.tree_leaves(g_m)):
    np.testing.assert_allclose(gu, gm, rtol=1e-3, atol=1e-5, err_msg=jax.tree_util.keystr(path))
  # a traced arch falls back to the masked build; bn='none' (synflow's copy) both ways
  np.testing.assert_allclose(jax.jit(un.apply)(v, x, a), m.apply(v, x, a), rtol=1e-5, atol=1e-6)
  nobn = dict(bn="none")
  np.testing.assert_allclose(un.clone(**nobn).apply(v, x, a), m.clone(**nobn).apply(v, x, a),
                             rtol=1e-4, atol=1e-6)
  with pytest.raises(JaxnasInputError, match="bn='nope' is not one of batch, none"):
    SPACE.model(bn="nope")


@pytest.mark.parametrize("unrolled", [True, False])
def test_remat_recomputes_cells_with_equal_values(unrolled):
  """``remat=True`` wraps each hook-free cell in ``jax.checkpoint`` (the backward pass recomputes
  it instead of keeping its intermediates: NB101 zico at batch 256 peaks at 7.0 GiB instead of
  not fitting 24 GiB): the same logits and gradients, and the program has the checkpoints."""
  a = SPACE.encode(csv_spec(33))
  x = tiny_batch_of(4).x
  m = SPACE.model(**CFG, unrolled=unrolled)
  r = SPACE.model(**CFG, unrolled=unrolled, remat=True)
  v = m.init(jax.random.key(0), x, a)
  loss = lambda mod: (lambda p: jnp.sum(jnp.sin(mod.apply({"params": p}, x, a))))
  np.testing.assert_allclose(r.apply(v, x, a), m.apply(v, x, a), rtol=1e-6, atol=1e-7)
  for gr, gm in zip(jax.tree_util.tree_leaves(jax.grad(loss(r))(v["params"])),
                    jax.tree_util.tree_leaves(jax.grad(loss(m))(v["params"]))):
    np.testing.assert_allclose(gr, gm, rtol=1e-5, atol=1e-7)
  names = lambda mod: str(jax.make_jaxpr(jax.grad(loss(mod)))(v["params"]))
  cells = CFG["num_stacks"] * CFG["modules_per_stack"]
  assert names(r).count("checkpoint[") + names(r).count("remat") >= cells
  assert "checkpoint[" not in names(m) and "remat" not in names(m)


def test_epsilon_uses_the_nb101_weights_on_the_discrete_network():
  """epsilon on NB101 = the epsinas score of the *discrete* NB101 network (independent build)
  with every weight and BN scale = w and biases 0, for NB101's w = (1e-4, 10), one output."""
  from jaxnas.proxies import epsilon as E
  assert SPACE.proxy_setting("epsilon", "weights") == (1e-4, 10.0)
  assert get_space("darts").proxy_setting("epsilon", "weights", "own") == "own"
  archs = np.stack([SPACE.encode(csv_spec(i)) for i in (0, 33)])
  batch = tiny_batch_of(16)
  got = engine.score(SPACE, archs, ["epsilon"], batch, config=CFG, chunk_size=2)["epsilon"]
  for a, g in zip(archs, got):
    disc = N.NB101Net(SP.to_spec(a), num_classes=1, **CFG)
    shapes = jax.eval_shape(lambda: disc.init(jax.random.key(0), batch.x))["params"]

    def out(w):
      p = jax.tree_util.tree_map_with_path(
          lambda path, s: jnp.full(s.shape, 0.0 if path[-1].key == "bias" else w, s.dtype),
          shapes)
      return disc.apply({"params": p}, batch.x)[:, 0]
    want = E.score_from_outputs(out(1e-4), out(10.0))
    assert np.isfinite(g)
    np.testing.assert_allclose(g, want, rtol=2e-3, atol=1e-6)


def test_auto_runs_every_proxy_eagerly_on_big_nb101_networks(monkeypatch):
  """NB101 declares ``masked`` (its shared build computes every op at full width): ``auto`` on
  CPU uses the 'eager' executor for any proxy once the networks are big (threshold lowered here),
  with the compiled mode's scores."""
  from jaxnas.engine import scoring
  assert SPACE.masked and SPACE.unrolls and not get_proxy("l2_norm").cpu_eager
  archs = np.stack([SPACE.encode(csv_spec(i)) for i in (0, 5)])
  batch = tiny_batch_of(4)
  want = engine.score(SPACE, archs, ["l2_norm"], batch, config=CFG, mode="map")["l2_norm"]
  scoring._cached_score_fn.cache_clear()
  monkeypatch.setattr(scoring, "EAGER_MIN_FLOPS", 0.0)
  info = {}
  got = np.concatenate([v for *_, v in scoring.iter_scores(
      SPACE, archs, "l2_norm", batch, config=CFG, chunk_size=2, report=info)])
  assert info["mode"] == "eager"
  np.testing.assert_allclose(got, want, rtol=1e-5)
  scoring._cached_score_fn.cache_clear()


@pytest.mark.parametrize("row", [0, 1, 33])
def test_compact_parameters_are_the_discrete_layers_with_the_same_logits_and_gradients(row):
  """``Network.compact`` (NB101 unrolled): the tree ``model(compact=True)`` declares, exactly
  ``count_params`` entries (the shared layout holds every op at full width), the same logits, and
  gradients that are the shared gradients' entries that can be nonzero: the same sum of squares
  per role, and layer by layer the slices of the stacked gradients."""
  from jaxnas import spaces
  from jaxnas.spaces import params as P
  a = SPACE.encode(csv_spec(row))
  x = tiny_batch_of(4).x
  net = spaces.network("nb101", a, **CFG, unrolled=True)
  v = net.init(jax.random.key(row), x)
  cnet, cv = net.compact(v)
  size = lambda t: sum(leaf.size for leaf in jax.tree_util.tree_leaves(t))
  assert cnet.module.compact and size(cv["params"]) == SPACE.count_params(a, **CFG)
  assert size(cv["params"]) < size(v["params"])
  declared = cnet.init(jax.random.key(1), x)["params"]
  assert (jax.tree_util.tree_map(jnp.shape, declared)
          == jax.tree_util.tree_map(jnp.shape, cv["params"]))
  np.testing.assert_allclose(cnet.apply(cv, x), net.apply(v, x), rtol=1e-6, atol=1e-7)
  loss = lambda n, var: jax.grad(lambda p: jnp.sum(jnp.sin(n.apply({"params": p}, x))))(
      var["params"])
  g, gc = loss(net, v), loss(cnet, cv)
  for kind in P.KINDS:
    sq = lambda t: float(P.masked_sum(lambda u: np.sum(np.asarray(u, np.float64) ** 2), t,
                                      P.select(t, (kind,))))
    np.testing.assert_allclose(sq(gc), sq(g), rtol=1e-5, err_msg=kind)
  enc = S.encode(SP.to_spec(a), N.stack_widths(CFG["stem_channels"], CFG["num_stacks"]))
  for layer, op, i, _, ci, co in N.cell_layers(enc.matrix, enc.ops, enc.vc[1], 2 * 8, 16):
    np.testing.assert_allclose(gc[f"cell_1_0_{layer}"]["conv"]["kernel"],
                               g[f"cell_1_0_{op}"]["conv"]["kernel"][i][:, :, :ci, :co],
                               rtol=1e-6, err_msg=layer)
  # a traced or masked network has no compact form: unchanged, and compact=True is refused
  masked = spaces.network("nb101", a, **CFG)
  same_net, same_v = masked.compact(v)
  assert same_net is masked and same_v is v
  with pytest.raises(JaxnasInputError, match="compact=True.*concrete arch"):
    jax.jit(lambda arch: cnet._replace(arch=arch).apply(cv, x))(a)
