"""MeCo and MeCo_opt on NAS-Bench-101 against an independent NumPy forward pass of the MeCo
authors' NB101 model that records every PyTorch hook event (conv outputs before BN, containers,
logits included; ``tests/proxies/nb101_reference.py``): the reference's input (one N(0, 1)
64 x 64 image drawn from the key, ``batch.x`` ignored), the seeded channel subsets of MeCo_opt,
determinism, and the capability plumbing (tap only on the unrolled build; ``auto`` runs eagerly)."""

import functools
import warnings

import jax
import numpy as np
import pytest

from jaxnas import engine, spaces
from jaxnas.data import Batch
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import get_proxy, meco, supported_proxies
from jaxnas.spaces.nb101.net import TAP_SITES
from tests.conftest import tiny_batch_of
from tests.proxies.nb101_reference import Net
from tests.spaces.nb101.common import INCEPTION, MIXED, TRIVIAL

CFG = dict(stem_channels=8, num_stacks=2, modules_per_stack=1)
SPACE = spaces.get_space("nb101")
SPECS = {"mixed": MIXED, "trivial": TRIVIAL, "inception": INCEPTION}
#: hook events per (site) of the reference model, by module class (the docstring's table)
EVENTS = {"stem_bn": 2, "stem": 3, "downsample": 1, "proj_bn": 2, "proj": 3, "conv_bn": 2,
          "conv": 4, "pool": 2, "cell": 1}


def np_lambda(y, idx=None):
  """The reference's per-event value: Y[0] as (C, -1) (channels of ``idx``), corrcoef with
  NaN/inf -> 0, smallest real part of ``eig``, float64."""
  f = np.asarray(y, np.float64)[0]
  f = f.reshape(-1, f.shape[-1]).T if f.ndim == 3 else f.reshape(f.shape[0], -1)
  if idx is not None:
    f = f[idx]
  with warnings.catch_warnings(), np.errstate(all="ignore"):
    warnings.simplefilter("ignore")
    c = np.atleast_2d(np.corrcoef(f))
  c[~np.isfinite(c)] = 0
  return float(np.min(np.linalg.eigvals(c).real))


@functools.lru_cache(maxsize=None)
def _init():
  return jax.jit(lambda k, x, a: SPACE.model(**CFG).init(k, x, a))


def _setup(name, seed=0):
  arch = SPACE.encode(SPECS[name])
  v = _init()(jax.random.key(seed), tiny_batch_of(1).x, arch)
  net = spaces.Network(SPACE, SPACE.model(**CFG, unrolled=True), arch)
  return arch, v, net


def _reference(v, name, x):
  ref = Net(v["params"], SPECS[name], **CFG)
  ref.forward(np.asarray(x))
  return ref.events


def _opt_reference(events, key, channels=8):
  """MeCo_opt by hand: per hook call, C/k lambda of the channels at
  permutation(fold_in(key, site index, block, part, call), C)[:k], k = min(channels, C)."""
  total = 0.0
  for _, y, tag in events:
    if tag is None:
      continue
    site, block, part, call = tag
    ev = key
    for i in (TAP_SITES.index(site), block, part, call):
      ev = jax.random.fold_in(ev, i)
    c = y.shape[-1]
    k = min(channels, c)
    total += c / k * np_lambda(y, np.asarray(jax.random.permutation(ev, c))[:k])
  return total


def test_the_reference_model_fires_the_documented_hook_events():
  """The hand-written module tree against the docstring's multiplicity table, per tensor."""
  assert SPACE.proxy_settings["meco"]["hook_events"] == EVENTS
  _, v, _ = _setup("mixed")
  events = _reference(v, "mixed", tiny_batch_of(1).x)
  calls = {}
  for _, _, tag in events:
    if tag is not None:
      calls.setdefault(tag[:3], []).append(tag[3])
  for (site, _, _), js in calls.items():
    assert js == list(range(EVENTS[site])), site
  kinds = [k for k, _, _ in events]
  # MIXED per cell: projections into 1, 2 and the output, convs at 1, 2, 4, a pool at 3
  assert kinds.count("ConvBnRelu") == 2 * (3 + 3) + 1
  assert kinds.count("Conv3x3BnRelu") == 2 * 2 and kinds.count("Conv1x1BnRelu") == 2
  assert kinds.count("MaxPool3x3") == 2 and kinds.count("MaxPool2d") == 2 + 1
  assert kinds.count("Cell") == 2 and kinds[-2:] == ["Linear", "Network"]


@pytest.mark.parametrize("name", list(SPECS))
def test_meco_equals_the_reference_on_every_hook_event(name):
  _, v, net = _setup(name)
  key = jax.random.key(5)
  batch = tiny_batch_of(1)
  got = float(get_proxy("meco").fn(net, v, batch, key))
  # the reference's input: one N(0, 1) image of 64 x 64, batch.x ignored
  x = jax.random.normal(jax.random.split(key)[0], (1, 64, 64, 3))
  events = _reference(v, name, x)
  want = sum(np_lambda(y) for _, y, _ in events)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  assert np.isfinite(got) and got > 0
  # the head contributes nothing (one observation per channel)
  assert all(np_lambda(y) == 0.0 for k, y, _ in events if k in ("Linear", "Network"))
  # BN per-channel affine: the conv output (Conv2d event) has its BN output's lambda
  for (k1, y1, _), (k2, y2, _) in zip(events, events[1:]):
    if k1 == "Conv2d":
      assert k2 == "BatchNorm2d"
      np.testing.assert_allclose(np_lambda(y1), np_lambda(y2), atol=1e-6)
  other = Batch(tiny_batch_of(1, seed=3).x * 2.0, None)
  assert float(get_proxy("meco").fn(net, v, other, key)) == got
  # meco_score on any given input (path 1: images; a batch of 2: BN over both, lambda of sample 0)
  xs = tiny_batch_of(2, res=16).x
  want_x = sum(np_lambda(y) for _, y, _ in _reference(v, name, xs))
  np.testing.assert_allclose(float(meco.meco_score(net, v, xs)), want_x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["mixed", "inception"])
def test_meco_opt_equals_the_reference_with_its_seeded_channel_subsets(name):
  _, v, net = _setup(name, seed=1)
  key = jax.random.key(7)
  batch = tiny_batch_of(1)
  got = float(get_proxy("meco_opt").fn(net, v, batch, key))
  k_in, k_opt = jax.random.split(key)
  events = _reference(v, name, jax.random.normal(k_in, (1, 64, 64, 3)))
  np.testing.assert_allclose(got, _opt_reference(events, k_opt), rtol=1e-4, atol=1e-4)
  # deterministic; another key draws other subsets (and another input)
  assert float(get_proxy("meco_opt").fn(net, v, batch, key)) == got
  assert float(get_proxy("meco_opt").fn(net, v, batch, jax.random.key(8))) != got
  # with every channel sampled it is MeCo on the same input
  x = jax.random.normal(k_in, (1, 64, 64, 3))
  wide = meco.meco_score(net, v, x, meco.events_opt_tap(EVENTS, k_opt, channels=64))
  np.testing.assert_allclose(float(wide), float(get_proxy("meco").fn(net, v, batch, key)),
                             rtol=1e-5, atol=1e-5)


def test_nb101_supports_meco_eagerly_through_the_engine():
  assert {"meco", "meco_opt"} <= set(supported_proxies(SPACE))
  assert "tap" in SPACE.capabilities() and "tap" in SPACE.unrolled_only
  archs = np.stack([SPACE.encode(SPECS[n]) for n in ("mixed", "trivial")])
  batch = tiny_batch_of(1)
  names = ["meco", "meco_opt"]
  a = engine.score(SPACE, archs, names, batch, config=CFG, ids=[4, 9], seed=2)   # auto: eager
  b = engine.score(SPACE, archs[::-1], names, batch, config=CFG, ids=[9, 4], seed=2,
                   chunk_size=1, mode="eager")
  for n in names:
    assert np.all(np.isfinite(a[n])), n
    np.testing.assert_array_equal(a[n], b[n][::-1], err_msg=n)
  with pytest.raises(JaxnasInputError, match="NB101's tap .*mode='eager'"):
    engine.score(SPACE, archs, ["meco"], batch, config=CFG, mode="map")
