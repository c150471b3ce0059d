"""The NB101 Flax networks (methods-spec §13.1, §13.4): shapes, parameter counts against the
closed form, hand-computed outputs, initialisation, and the masked build against the discrete one.
Tiny configurations: stem 8, 1 module per stack, 8x8 inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.spaces.nb101 import counts as K
from jaxnas.spaces.nb101 import net as N
from jaxnas.spaces.nb101 import spec as S
from tests.spaces.nb101.common import C1, INCEPTION, MP, TRIVIAL, csv_spec

CFG = dict(stem_channels=8, num_stacks=3, modules_per_stack=1)
CLASSES = 5


def _x(b=4, r=8):
  return jax.random.normal(jax.random.key(1), (b, r, r, 3), jnp.float32)


def _size(tree):
  return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(tree))


def _shapes(net, x):
  return jax.eval_shape(lambda: net.init(jax.random.key(0), x))["params"]


def test_output_shape_and_collections():
  net = N.NB101Net(csv_spec(0), num_classes=CLASSES, **CFG)
  v = jax.jit(net.init)(jax.random.key(0), _x())
  assert set(v) == {"params"}
  y = jax.jit(net.apply)(v, _x())
  assert y.shape == (4, CLASSES) and bool(jnp.all(jnp.isfinite(y)))
  cell = v["params"]["cell_0_0"]
  assert sorted(cell) == ["proj_1", "proj_2", "vertex_1", "vertex_2", "vertex_3"]


def test_param_count_equals_closed_form_reduced_size():
  specs = [INCEPTION, TRIVIAL] + [csv_spec(i) for i in range(0, 300, 15)]
  for s in specs:
    net = N.NB101Net(s, num_classes=CLASSES, stem_channels=8, num_stacks=3, modules_per_stack=2)
    assert _size(_shapes(net, _x(1))) == K.params(s, 8, 3, 2, CLASSES), s


def test_param_count_equals_closed_form_full_size():
  for s in [INCEPTION, csv_spec(0), csv_spec(1)]:
    assert _size(_shapes(N.NB101Net(s), _x(1, 32))) == K.params(s)


def _np_conv(x, k):  # NHWC x HWIO, stride 1, zero 'same' padding, float64
  kh = k.shape[0]
  p = kh // 2
  xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  h, w = x.shape[1:3]
  return sum(np.einsum("bhwc,cd->bhwd", xp[:, i:i + h, j:j + w], k[i, j])
             for i in range(kh) for j in range(kh))


def _np_cbr(x, p):
  y = _np_conv(x, np.asarray(p["kernel"], np.float64))
  mu, var = y.mean((0, 1, 2)), y.var((0, 1, 2))
  y = (y - mu) / np.sqrt(var + 1e-5) * np.asarray(p["scale"]) + np.asarray(p["bias"])
  return np.maximum(y, 0)


def _np_maxpool3(x):
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
  h, w = x.shape[1:3]
  return np.max([xp[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)


def _np_net(params, x, cell_fn, stacks=2):
  x = _np_cbr(np.asarray(x, np.float64), params["stem"])
  for s in range(stacks):
    if s:
      b, h, w, c = x.shape
      x = x.reshape(b, h // 2, 2, w // 2, 2, c).max((2, 4))
    x = cell_fn(x, params[f"cell_{s}_0"])
  d = params["head"]["dense"]
  return x.mean((1, 2)) @ np.asarray(d["kernel"]) + np.asarray(d["bias"])


@pytest.mark.parametrize("case", ["conv1x1_chain", "pool_concat_truncate", "trivial"])
def test_hand_checked_cells(case):
  if case == "conv1x1_chain":  # input -> conv1x1 -> output
    spec = S.parse([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", C1, "output"])

    def cell(x, p):
      return _np_cbr(_np_cbr(x, p["proj_1"]), p["vertex_1"])
  elif case == "pool_concat_truncate":
    # 0->1 conv1x1, 0->2 and 1->2 maxpool, 1,2 -> out, 0 -> out; vc = (C/2, C/2) at C = 8, 16
    # chain 1 -> 2 with vc[1] = 5 > vc[2] = 4 at C = 9 is covered by the masked tests
    spec = S.parse([[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
                   ["input", C1, MP, "output"])

    def cell(x, p):
      x1 = _np_cbr(_np_cbr(x, p["proj_1"]), p["vertex_1"])
      n = x1.shape[-1]
      x2 = _np_maxpool3(x1[..., :n] + _np_cbr(x, p["proj_2"]))
      return np.concatenate([x1, x2], -1) + _np_cbr(x, p["proj_6"])
  else:
    spec = TRIVIAL

    def cell(x, p):
      return _np_cbr(x, p["proj_6"])
  net = N.NB101Net(spec, stem_channels=8, num_stacks=2, modules_per_stack=1, num_classes=3)
  x = _x()
  p = _unit_normal_params(net, x)
  np.testing.assert_allclose(jax.jit(net.apply)({"params": p}, x), _np_net(p, x, cell),
                             rtol=2e-4, atol=2e-5)


def test_initialisation():
  net = N.NB101Net(INCEPTION, num_classes=CLASSES, stem_channels=8, num_stacks=1,
                   modules_per_stack=1)
  v = jax.jit(net.init)(jax.random.key(0), _x())["params"]
  p = v["cell_0_0"]["vertex_2"]
  assert bool(jnp.all(p["scale"] == 1)) and bool(jnp.all(p["bias"] == 0))
  assert bool(jnp.all(v["head"]["dense"]["bias"] == 0))
  k = N.CONV_INIT(jax.random.key(3), (3, 3, 64, 128))
  np.testing.assert_allclose(float(jnp.std(k)), np.sqrt(2 / (9 * 128)), rtol=0.03)
  w = N.DENSE_INIT(jax.random.key(4), (512, 100))
  np.testing.assert_allclose(float(jnp.std(w)), 0.01, rtol=0.03)


# ------------------------------------------------------------------ masked build (§13.4)

MASKED_SPECS = {
    "inception": lambda: INCEPTION,
    "trivial": lambda: TRIVIAL,
    "csv_row1_truncation": lambda: csv_spec(0),
    "csv_row2": lambda: csv_spec(1),
    "csv_v7": lambda: next(s for s in map(csv_spec, range(300)) if S.prune(s).num_vertices == 7),
    "csv_v6": lambda: next(s for s in map(csv_spec, range(300)) if S.prune(s).num_vertices == 6),
}
MCFG = dict(stem_channels=8, num_stacks=2, modules_per_stack=1)  # 2 stacks keep compiles short
WIDTHS = N.stack_widths(MCFG["stem_channels"], MCFG["num_stacks"])
W3 = N.stack_widths(CFG["stem_channels"], CFG["num_stacks"])


def _unit_normal_params(net, *args):
  """Parameters of ``net`` without running it: N(0, 1) kernels, BN scale 1 + 0.1 N(0, 1), biases
  0.1 N(0, 1) (the masked net's init draws unit-normal cell kernels; the rest is perturbed)."""
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), *args))["params"]
  leaves, tree = jax.tree_util.tree_flatten_with_path(shapes)

  @jax.jit
  def draw():
    keys = jax.random.split(jax.random.key(5), len(leaves))
    out = []
    for (path, a), k in zip(leaves, keys):
      z = jax.random.normal(k, a.shape)
      name = jax.tree_util.keystr(path)
      out.append(z if "kernel" in name else 1 + 0.1 * z if "scale" in name else 0.1 * z)
    return jax.tree_util.tree_unflatten(tree, out)

  return draw()


@pytest.fixture(scope="module")
def masked():
  net = N.NB101MaskedNet(num_classes=CLASSES, **MCFG)
  params = _unit_normal_params(net, _x(), S.encode(TRIVIAL, WIDTHS))
  traces = []

  @jax.jit
  def run(params, x, enc):
    traces.append(1)
    return net.apply({"params": N.arch_params(params, enc, **MCFG)}, x, enc)

  return net, params, run, traces


@pytest.mark.parametrize("name", list(MASKED_SPECS))
def test_masked_equals_discrete(masked, name):
  _, params, run, traces = masked
  spec, x = MASKED_SPECS[name](), _x()
  enc = S.encode(spec, WIDTHS)
  y = run(params, x, enc)
  dp = N.discrete_params(N.arch_params(params, enc, **MCFG), spec, **MCFG)
  disc = N.NB101Net(spec, num_classes=CLASSES, **MCFG)
  shapes = jax.tree_util.tree_map(jnp.shape, _shapes(disc, x))
  assert jax.tree_util.tree_map(jnp.shape, dp) == shapes
  np.testing.assert_allclose(y, jax.jit(disc.apply)({"params": dp}, x), rtol=1e-4, atol=1e-5)
  assert len(traces) == 1  # one compiled function for every spec


def test_masked_gradients_equal_discrete():
  cfg = dict(stem_channels=10, num_stacks=1, modules_per_stack=1)  # vc 4, 3, 3: truncation
  spec, x = csv_spec(0), _x()
  enc = S.encode(spec, (10,))
  net = N.NB101MaskedNet(num_classes=CLASSES, **cfg)
  params = N.arch_params(_unit_normal_params(net, x, enc), enc, **cfg)
  disc = N.NB101Net(spec, num_classes=CLASSES, **cfg)
  dp = N.discrete_params(params, spec, **cfg)
  gm = jax.jit(jax.grad(lambda p: jnp.sum(net.apply({"params": p}, x, enc) ** 2)))(params)
  gd = jax.jit(jax.grad(lambda p: jnp.sum(disc.apply({"params": p}, x) ** 2)))(dp)
  for a, b in zip(jax.tree_util.tree_leaves(N.discrete_params(gm, spec, **cfg)),
                  jax.tree_util.tree_leaves(gd)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
  # gradients of entries the spec lacks are zero, so weight sums over the masked tree are exact
  def sq(t):
    return sum(float(jnp.sum(a * a)) for a in jax.tree_util.tree_leaves(t))

  np.testing.assert_allclose(sq(gm), sq(gd), rtol=1e-4)
  np.testing.assert_allclose(sq(params), sq(dp), rtol=1e-6)


def test_live_entry_count_equals_closed_form_on_all_csv_rows():
  full = jax.jit(lambda e: N.num_live_params(e))
  small = jax.jit(lambda e: N.num_live_params(e, num_classes=CLASSES, **CFG))
  for i in range(300):
    s = csv_spec(i)
    assert int(full(S.encode(s))) == K.params(s), i
    assert int(small(S.encode(s, W3))) == K.params(s, num_classes=CLASSES, **CFG), i


def test_arch_params_nonzeros_equal_live_count():
  net = N.NB101MaskedNet(num_classes=CLASSES, **CFG)
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), _x(), S.encode(TRIVIAL, W3)))
  ones = jax.tree_util.tree_map(lambda a: jnp.ones(a.shape, a.dtype), shapes["params"])
  for s in [INCEPTION, TRIVIAL, csv_spec(0), csv_spec(1)]:
    ap = N.arch_params(ones, S.encode(s, W3), **CFG)
    nz = sum(int(jnp.count_nonzero(a)) for a in jax.tree_util.tree_leaves(ap))
    assert nz == K.params(s, num_classes=CLASSES, **CFG)
