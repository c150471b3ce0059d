"""snip: independent mask-gradient formulation on a hand-written toy network, and the NB201 shared
build against the discrete network. Also defines the toy network and NB201 helpers reused by the
other gradient-proxy tests."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxnas.proxies import get_proxy
from jaxnas.proxies import _common
from jaxnas.proxies.snip import saliency
from jaxnas.spaces import nb201
from jaxnas.spaces import params as P
from tests.conftest import TINY, tiny_batch_of, tiny_net

#: An NB201 cell using every op: conv3x3, skip, conv1x1 | avg pool, conv3x3, none.
ARCH = np.array([3, 1, 2, 4, 3, 0], np.int32)

# ------------------------------------------------------------------ toy network (plain jnp)


def toy_params(key, cin=3, c=4, classes=5, bias=True, bn=True):
  """conv_a 3x3 (cin->c); conv_stack: two stacked 1x1 layers (c->c); bn; dense head."""
  ks = jax.random.split(key, 6)
  u = lambda k, shape, fan: jax.random.uniform(k, shape, jnp.float32, -fan**-0.5, fan**-0.5)
  p = {"conv_a": {"kernel": u(ks[0], (3, 3, cin, c), 9 * cin)},
       "conv_stack": {"kernel": u(ks[1], (2, 1, 1, c, c), c)},
       "classifier": {"kernel": u(ks[2], (c, classes), c)}}
  if bias:
    p["classifier"]["bias"] = u(ks[3], (classes,), c)
  if bn:
    p["bn"] = {"scale": 1.0 + 0.3 * u(ks[4], (c,), 1), "bias": 0.1 * u(ks[5], (c,), 1)}
  return p


def _conv(x, k, pad):
  return jax.lax.conv_general_dilated(x, k, (1, 1), ((pad, pad), (pad, pad)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def toy_apply(params, x, gates=None, shifts=None, record=None):
  """Logits of the toy net. ``gates``/``shifts``: optional multiplicative/additive terms on the
  outputs of the 4 weight layers, keyed ``'a', 's0', 's1', 'head'``; ``record``: a dict that
  receives those outputs (before gate and shift)."""
  def out(name, h):
    if record is not None:
      record[name] = h
    if gates is not None:
      h = h * gates[name][:, None, None, :] if h.ndim == 4 else h * gates[name]
    if shifts is not None:
      h = h + shifts[name]
    return h
  h = out("a", _conv(x, params["conv_a"]["kernel"], 1))
  for i in range(2):
    h = out(f"s{i}", _conv(jax.nn.relu(h), params["conv_stack"]["kernel"][i], 0))
  if "bn" in params:  # train-mode BN couples the samples
    mu, var = jnp.mean(h, (0, 1, 2)), jnp.var(h, (0, 1, 2))
    h = (h - mu) / jnp.sqrt(var + 1e-5) * params["bn"]["scale"] + params["bn"]["bias"]
  h = jnp.mean(jax.nn.relu(h), (1, 2))
  y = h @ params["classifier"]["kernel"]
  if "bias" in params["classifier"]:
    y = y + params["classifier"]["bias"]
  return out("head", y)


def toy_data(n=6, res=6, classes=5, seed=0):
  kx, ky = jax.random.split(jax.random.key(seed))
  return (jax.random.normal(kx, (n, res, res, 3)),
          jax.random.randint(ky, (n,), 0, classes))


def toy_loss(params, x, y):
  return _common.cross_entropy(toy_apply(params, x), y)


#: (leaf path, stacked index or None) of each weight layer of the toy net.
TOY_LAYERS = ((("conv_a", "kernel"), None), (("conv_stack", "kernel"), 0),
              (("conv_stack", "kernel"), 1), (("classifier", "kernel"), None))


def toy_layers(tree):
  """The toy net's weight layers as a list of arrays (stacked leaf split)."""
  flat = traverse_util.flatten_dict(tree)
  return [flat[p] if i is None else flat[p][i] for p, i in TOY_LAYERS]


# ------------------------------------------------------------------ NB201 helpers


def nb201_setup(arch=ARCH, n=8, **config):
  """Tiny NB201 net (shared build), its PyTorch-default variables, and a batch of real images."""
  batch = tiny_batch_of(n)
  net = tiny_net(arch, **config)
  variables = jax.jit(net.init)(jax.random.key(7), batch.x)
  return net, variables, batch


def discrete(arch, variables, **config):
  """The discrete network of ``arch`` and the variables mapped onto it."""
  d = nb201.NB201Net(**TINY, fixed_arch=tuple(int(a) for a in arch), **config)
  return d, {k: nb201.discrete_params(t, arch) for k, t in variables.items()}


def discrete_weights(tree):
  """Conv and dense kernels of a *discrete* parameter tree: one layer per leaf."""
  flat = traverse_util.flatten_dict(tree)
  return {p: v for p, v in flat.items() if P.kind_of(p) in P.WEIGHTS}


def run_proxy(name, net, variables, batch, archs=None, key=jax.random.key(0)):
  """The registered proxy, jitted once with the architecture as a traced argument; evaluated on
  ``net.arch`` (float) or on each of ``archs`` (list)."""
  fn = get_proxy(name).fn
  f = jax.jit(lambda a: fn(net._replace(arch=a), variables, batch, key))
  if archs is None:
    return float(f(net.arch))
  return [float(f(jnp.asarray(a, jnp.int32))) for a in archs]


def discrete_ce_grads(arch, variables, batch):
  """Discrete network's parameters and the cross-entropy gradient with respect to them."""
  d, vd = discrete(arch, variables)
  loss = lambda p: _common.cross_entropy(d.apply({**vd, "params": p}, batch.x), batch.y)
  return vd["params"], jax.jit(jax.grad(loss))(vd["params"])


# ------------------------------------------------------------------ tests


def test_snip_equals_mask_gradient_on_toy():
  params = toy_params(jax.random.key(0))
  x, y = toy_data()
  masks = P.select(params, P.WEIGHTS)
  got = jax.jit(lambda p: saliency(
        p, jax.grad(lambda q: toy_loss(q, x, y))(p), masks))(params)
  # reference formulation: |dL/dc| for multiplicative masks c = 1 on the weights only
  sel = traverse_util.flatten_dict(masks)

  def masked_loss(c):
    flat = traverse_util.flatten_dict(params)
    fc = traverse_util.flatten_dict(c)
    return toy_loss(traverse_util.unflatten_dict(
        {k: v * fc[k] if sel[k] else v for k, v in flat.items()}), x, y)

  ones = jax.tree_util.tree_map(jnp.ones_like, params)
  dc = traverse_util.flatten_dict(jax.jit(jax.grad(masked_loss))(ones))
  want = sum(np.abs(np.asarray(v, np.float64)).sum() for k, v in dc.items() if sel[k])
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
  # biases and BN parameters are excluded: including them changes the value
  every = jax.tree_util.tree_map(lambda _: 1.0, params)
  assert float(jax.jit(lambda p: saliency(
        p, jax.grad(lambda q: toy_loss(q, x, y))(p), every))(params)) > got


def test_snip_nb201_equals_discrete_network():
  net, variables, batch = nb201_setup()
  got = run_proxy("snip", net, variables, batch)
  params, grads = discrete_ce_grads(ARCH, variables, batch)
  w, g = discrete_weights(params), discrete_weights(grads)
  want = sum(np.abs(np.asarray(w[p], np.float64) * np.asarray(g[p])).sum() for p in w)
  np.testing.assert_allclose(got, want, rtol=1e-4)
  assert got > 0
