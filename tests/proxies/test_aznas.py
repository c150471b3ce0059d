"""AZ-NAS: per-block entropies and trainabilities against numpy on the block outputs of an
independent forward pass (one ``jax.vjp`` per block, as the reference's ``autograd.grad`` calls),
the degenerate architectures (identity cells: T; zero cells: E and P) against a structural
classification of all of NB201, the complexity against the NATS-Bench API FLOPs, and the
pool-relative rank aggregation against scipy."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jaxnas import spaces
from jaxnas.data import Batch
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import aznas, get_proxy
from jaxnas.spaces import nb201
from tests.conftest import TINY, tiny_proxy_net
from tests.proxies.nb201_reference import Net

KEY = jax.random.key(11)
SHAPE = (aznas.BATCH_SIZE, 8, 8, 3)
NAMES = ("az_expressivity", "az_progressivity", "az_trainability")


@functools.lru_cache(maxsize=None)
def _fns():
  net = tiny_proxy_net("az_expressivity")
  init = jax.jit(lambda k, x, a: net._replace(arch=a).init(k, x))
  ent = jax.jit(lambda v, x, a: aznas.block_entropies(net._replace(arch=a), v, x))
  trn = jax.jit(lambda v, x, k, a: aznas.block_trainabilities(net._replace(arch=a), v, x, k))

  def scores(v, key, arch):
    batch = Batch(jnp.zeros((1,) + SHAPE[1:]), None)
    return jnp.stack([get_proxy(name).fn(net._replace(arch=arch), v, batch, key)
                      for name in NAMES])

  def proxies(arch, key):
    k_init, k = jax.random.split(key)
    return scores(net._replace(arch=arch).init(k_init, jnp.zeros(SHAPE)), k, arch)

  return (net, init, ent, trn, jax.jit(scores), jax.jit(jax.vmap(proxies, in_axes=(0, None))),
          jax.jit(proxies))


def np_entropy(f):
  """The reference's e_l in float64: NCHW -> (B H W, C), centred, eigvalsh, -sum p ln(p + 1e-8)."""
  x = np.asarray(f, np.float64).reshape(-1, f.shape[-1])
  x = x - x.mean(0, keepdims=True)
  s = np.linalg.eigvalsh(x.T @ x / x.shape[0])
  with np.errstate(all="ignore"):
    p = s / s.sum()
    return float(np.sum(-p * np.log(p + 1e-8)))


def np_pixel_unshuffle_nchw(g, s):
  b, c, h, w = g.shape
  return g.reshape(b, c, h // s, s, w // s, s).transpose(0, 1, 3, 5, 2, 4).reshape(
      b, c * s * s, h // s, w // s)


def np_trainability(g, r):
  """The reference's t_l from NHWC ``g`` (input gradient) and ``r``, via PyTorch's NCHW layout."""
  g, r = np.asarray(g, np.float64), np.asarray(r, np.float64)
  if g.shape == r.shape and np.all(g == r):
    return -np.inf
  g, r = g.transpose(0, 3, 1, 2), r.transpose(0, 3, 1, 2)
  if g.shape[2] != r.shape[2]:
    g = np_pixel_unshuffle_nchw(g, g.shape[2] // r.shape[2])
  bo, co, ho, wo = r.shape
  gi = g.transpose(0, 2, 3, 1).reshape(bo * ho * wo, -1)
  go = r.transpose(0, 2, 3, 1).reshape(bo * ho * wo, co)
  s = np.linalg.svd(gi.T @ go / (bo * ho * wo), compute_uv=False).max()
  return -s - 1 / (s + 1e-6) + 2


def reference(v, x, arch, key_r):
  """(e, t) per block from the independent forward pass; t by one jax.vjp per block."""
  net = Net(v["params"], arch, TINY["N"])
  net.forward(x)
  f = net.blocks
  e = np.array([np_entropy(b) for b in f])
  t = []
  for l in range(1, len(f)):
    r = aznas.rademacher(key_r, l, f[l].shape)
    _, pull = jax.vjp(net.block_fn(l), f[l - 1])
    t.append(np_trainability(pull(r)[0], r))
  return e, np.array(t)


@pytest.mark.parametrize("index", [180, 9930])
def test_entropies_and_trainabilities_against_independent_forward_and_numpy(index):
  net, init, ent, trn, scores, *_ = _fns()
  a = nb201.from_index(index)
  x = aznas.gaussian_input(jax.random.key(2), Batch(jnp.zeros((1, 8, 8, 3)), None))
  v = init(jax.random.key(3), x, a)
  k_r = jax.random.key(4)
  e_ref, t_ref = reference(v, x, a, k_r)
  assert len(e_ref) == 3 * TINY["N"] + 3
  e, ok = ent(v, x, a)
  assert np.all(np.asarray(ok))
  np.testing.assert_allclose(e, e_ref, rtol=1e-4, atol=1e-5)
  t, ident, e2, _ = trn(v, x, k_r, a)
  assert not np.any(np.asarray(ident))
  np.testing.assert_allclose(t, t_ref, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(e2, e, rtol=1e-6)
  # E and P from the entropies; every e_l <= ln C_l
  np.testing.assert_allclose(aznas.expressivity_of(e, ok), e_ref.sum(), rtol=1e-5)
  np.testing.assert_allclose(aznas.progressivity_of(e, ok), np.min(np.diff(e_ref)), atol=1e-4)
  widths = [4] * 2 + [8] * 2 + [16] * 2
  assert np.all(e_ref <= np.log(widths) + 1e-6)
  # the registered proxies: the same quantities on the Gaussian input drawn from their key
  key = jax.random.key(5)
  k_x, k_r = jax.random.split(key)
  batch = Batch(jnp.zeros((1, 8, 8, 3)), None)
  x = aznas.gaussian_input(k_x, batch)
  e_ref, t_ref = reference(v, x, a, k_r)
  got = np.asarray(scores(v, key, a))                      # E, P, T
  np.testing.assert_allclose(got[0], e_ref.sum(), rtol=1e-5)
  np.testing.assert_allclose(got[1], np.min(np.diff(e_ref)), atol=1e-4)
  np.testing.assert_allclose(got[2], t_ref.mean(), rtol=1e-4)


def _classify(arch):
  """'zero' (cell output identically 0), 'identity' (cell output = its input), or 'normal'."""
  op = dict(zip(nb201.EDGES, arch))
  live = {0: True}
  for node in (1, 2, 3):
    live[node] = any(op[(node, j)] != 0 and live[j] for j in range(node))
  if not live[3]:
    return "zero"
  others_dead = all(op[(3, j)] == 0 or not live[j] for j in (1, 2))
  if op[(3, 0)] == 1 and others_dead:
    return "identity"
  return "normal"


def test_degenerate_architectures_match_structural_classification():
  kinds = {}
  for a in itertools.product(range(5), repeat=6):
    kinds.setdefault(_classify(a), []).append(a)
  # methods-spec §10.2: 341 architectures with T = -inf and a disjoint 341 with E = P = -inf
  assert len(kinds["identity"]) == 341 and len(kinds["zero"]) == 341
  rng = np.random.default_rng(0)
  picks = {k: [kinds[k][i] for i in rng.choice(len(kinds[k]), 3, replace=False)] for k in kinds}
  archs = np.array(picks["identity"] + picks["zero"] + picks["normal"], np.int32)
  *_, proxies, single = _fns()
  out = np.asarray(proxies(archs, KEY))                    # (9, 3): E, P, T under vmap
  assert np.all(np.isfinite(out))
  deg = out == aznas.DEGENERATE
  np.testing.assert_array_equal(deg[:3], [[False, False, True]] * 3)     # identity: T only
  np.testing.assert_array_equal(deg[3:6], [[True, True, False]] * 3)     # zero: E and P only
  assert not deg[6:].any()
  # a zero cell has no input gradient: t = -0 - 1/(0 + 1e-6) + 2 for each of its blocks
  assert np.all(out[3:6, 2] < -1e5)
  # the same without vmap (lax.switch: only the chosen op of each edge runs)
  for i in (0, 3, 6):
    np.testing.assert_allclose(np.asarray(single(archs[i], KEY)), out[i], rtol=1e-4)


def test_complexity_is_the_nats_bench_api_flops():
  # NATS-Bench API FLOPs printed in AZ-NAS's notebook (methods-spec §10.2), C=16, N=5
  proxy = get_proxy("az_complexity")
  for index, res, classes, api in ((13714, 32, 10, 153.27), (3558, 32, 10, 121.82),
                                    (13714, 16, 120, 38.33), (3558, 16, 120, 30.46)):
    net = spaces.network("nb201", nb201.from_index(index), num_classes=classes)
    got = float(proxy.fn(net, None, Batch(np.zeros((1, res, res, 3)), None), None))
    assert abs(got - api) < 0.006, (index, res, got, api)


def test_aggregate_is_the_sum_of_log_ranks():
  rng = np.random.default_rng(1)
  n = 40
  comp = {"expressivity": rng.normal(size=n), "progressivity": rng.integers(0, 5, n) * 1.0,
          "trainability": rng.normal(size=n), "complexity": rng.integers(0, 3, n) * 1.0}
  comp["trainability"][[3, 7]] = aznas.DEGENERATE
  comp["trainability"][9] = -np.inf
  comp["expressivity"][[1, 2]] = np.nan
  s = aznas.aggregate(comp)
  ref = np.zeros(n)
  for v in comp.values():
    v = np.where(np.isnan(v) | (v <= aznas.DEGENERATE), -np.inf, v)
    ref += np.log(scipy.stats.rankdata(v) / n)
  np.testing.assert_allclose(s, ref, rtol=1e-12)
  assert s.shape == (n,) and np.all(s <= 0) and np.all(np.isfinite(s))
  # the three bottom trainabilities tie (DEGENERATE, -inf): average rank 2
  np.testing.assert_allclose(
      s - aznas.aggregate({k: v for k, v in comp.items() if k != "trainability"}),
      np.log(scipy.stats.rankdata(np.where(comp["trainability"] <= aznas.DEGENERATE, -np.inf,
                                           comp["trainability"])) / n))
  # invariant to strictly increasing transforms of any component; permutation-equivariant
  moved = dict(comp, expressivity=np.exp(comp["expressivity"]) * 3 + 1)
  np.testing.assert_allclose(aznas.aggregate(moved), s, rtol=1e-12)
  perm = rng.permutation(n)
  np.testing.assert_allclose(aznas.aggregate({k: v[perm] for k, v in comp.items()}), s[perm])
  # the best candidate in every component scores 0
  best = {k: np.append(np.nan_to_num(v), 1e9) for k, v in comp.items()}
  assert aznas.aggregate(best)[-1] == 0.0


def test_aggregate_and_network_errors():
  with pytest.raises(JaxnasInputError):
    aznas.aggregate({})
  with pytest.raises(JaxnasInputError, match="'b' has 2"):
    aznas.aggregate({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0]})
  with pytest.raises(JaxnasInputError, match="1-D"):
    aznas.aggregate({"a": np.zeros((2, 2))})
  space = spaces.get_space("darts")
  net = spaces.network(space, np.asarray(space.sample(jax.random.key(0), 1))[0])
  with pytest.raises(JaxnasInputError, match="block taps"):
    aznas.block_entropies(net, None, jnp.zeros((2, 8, 8, 3)))
