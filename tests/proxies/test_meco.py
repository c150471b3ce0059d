"""MeCo: the proxy against numpy (``corrcoef``, NaN -> 0, smallest eigenvalue of ``eig``) summed
over every PyTorch hook event of an independent forward pass of the zero-cost-nas NB201 model
(BN outputs, containers, pooled features and logits included), the correlation helper against
numpy with dead channels, invariances and bounds, and MeCo_opt's channel sampling."""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import spaces
from jaxnas.data import Batch
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import get_proxy, meco
from jaxnas.spaces import nb201
from jaxnas.spaces.nb201.net import TAP_SITES
from tests.conftest import TINY, tiny_batch_of, tiny_proxy_net
from tests.proxies.nb201_reference import Net


def np_lambda(y):
  """The reference's per-event value: Y[0] as (C, -1) in NCHW order, corrcoef, NaN/inf -> 0,
  min real part of the (general) eigenvalues, float64."""
  f = np.asarray(y, np.float64)[0]
  if f.ndim == 3:
    f = f.transpose(2, 0, 1)                     # HWC -> CHW
  f = f.reshape(f.shape[0], -1)
  with warnings.catch_warnings(), np.errstate(all="ignore"):
    warnings.simplefilter("ignore")
    c = np.atleast_2d(np.corrcoef(f))
  c[~np.isfinite(c)] = 0
  return float(np.min(np.linalg.eigvals(c).real))


def reference(v, x, arch):
  net = Net(v["params"], arch, TINY["N"])
  net.forward(x)
  return sum(np_lambda(t) for _, t in net.events), net.events


@functools.lru_cache(maxsize=None)
def _fns():
  net = tiny_proxy_net("meco")
  init = jax.jit(lambda k, x, a: net._replace(arch=a).init(k, x))

  def both(v, x, key, a):
    n, b = net._replace(arch=a), Batch(x, None)
    return get_proxy("meco").fn(n, v, b, key), get_proxy("meco_opt").fn(n, v, b, key)

  wide = jax.jit(lambda v, x, key, a: meco.meco_score(
      net._replace(arch=a), v, x, meco.meco_opt_tap(TINY["N"], key, channels=64)))
  return init, jax.jit(both), wide


# all-none cells (only stem, reduction and head terms), skip + pool + conv1x1 (index 0),
# conv-heavy cells
@pytest.mark.parametrize("arch", [np.zeros(6, np.int32), nb201.from_index(0),
                                  nb201.from_index(9930)])
def test_meco_against_numpy_on_every_hook_event(arch):
  init, both, wide = _fns()
  x = tiny_batch_of(1).x                                   # the reference: one image
  v = init(jax.random.key(0), x, arch)
  ref, events = reference(v, x, arch)
  got, opt = both(v, x, jax.random.key(1), arch)
  np.testing.assert_allclose(float(got), ref, rtol=1e-4, atol=2e-4)
  # pooled features, logits and the none op's zeros contribute nothing
  for kind, t in events:
    if kind in ("AdaptiveAvgPool2d", "top", "Linear", "NAS201Model", "Zero"):
      assert np_lambda(t) == 0.0, kind
  if not arch.any():   # no cell op but the zeros: the ReLUConvBNs are the reductions' four
    kinds = [k for k, _ in events]
    assert kinds.count("ReLUConvBN") == 4 and "Identity" not in kinds and "POOLING" not in kinds
  # MeCo_opt: finite; with at least as many samples as channels it is MeCo
  assert np.isfinite(float(opt))
  np.testing.assert_allclose(float(wide(v, x, jax.random.key(1), arch)), float(got), rtol=1e-6,
                             atol=1e-6)
  # a bigger batch: BN statistics over the batch, lambda from sample 0
  xb = tiny_batch_of(3).x
  ref_b, _ = reference(v, xb, arch)
  got_b, _ = both(v, xb, jax.random.key(1), arch)
  np.testing.assert_allclose(float(got_b), ref_b, rtol=1e-4, atol=2e-4)


def test_min_corr_eigenvalue_against_numpy_dead_channels_and_invariance():
  rng = np.random.default_rng(0)
  f = rng.normal(size=(6, 20)).astype(np.float32)
  f[2] = 0.0                                              # dead channel
  f[4] = 3.0                                              # constant channel (exactly)
  lam = jax.jit(meco.min_corr_eigenvalue)
  ref = np_lambda(f.T[None, :, None, :])                  # as one NHWC sample (H=20, W=1, C=6)
  np.testing.assert_allclose(float(lam(f)), ref, atol=1e-5)
  assert float(lam(f)) == pytest.approx(0.0, abs=1e-6)     # zero rows -> eigenvalue 0
  g = rng.normal(size=(6, 40))
  base = float(lam(g))
  assert 0.0 < base <= 1.0
  np.testing.assert_allclose(float(lam(g * rng.uniform(0.1, 5, (6, 1)) + rng.normal(size=(6, 1)))),
                             base, rtol=1e-4)             # per-channel positive affine
  mix = rng.normal(size=(6, 3)) @ rng.normal(size=(3, 40))  # rank 3 < 6 channels
  assert abs(float(lam(mix))) < 1e-5
  assert float(lam(np.ones((4, 1)))) == 0.0                 # one observation: NaN -> 0


def test_meco_opt_tap_samples_channels_per_event():
  rng = np.random.default_rng(1)
  y = jnp.asarray(rng.normal(size=(2, 5, 5, 16)), jnp.float32)
  key = jax.random.key(3)
  tap = meco.meco_opt_tap(N=5, key=key)
  f = np.asarray(y[0]).reshape(-1, 16).T
  # the documented draw: event key = fold_in(key, site index, block, part), subset j of the
  # event's hook calls = permutation(fold_in(event key, j), C)[:8]
  ev = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(
      key, TAP_SITES.index("pool")), 7), 2)
  subs = [np.asarray(jax.random.permutation(jax.random.fold_in(ev, j), 16))[:8] for j in (0, 1)]
  assert set(subs[0]) != set(subs[1])
  expect = sum(2.0 * np_lambda(f[s].T[None, :, None, :]) for s in subs)   # C/8 = 2, 2 events
  np.testing.assert_allclose(float(tap("pool", y, jnp.int32(7), jnp.int32(2))), expect,
                             rtol=1e-4, atol=1e-5)
  # interlacing: a principal submatrix's smallest eigenvalue is at least the full one's
  assert float(tap("skip", y, 1, 0)) >= 2.0 * float(meco.min_corr_eigenvalue(f)) - 1e-5
  # the last cell of a stage has one more hook event (all channels: no sampling)
  every = meco.meco_opt_tap(N=5, key=key, channels=16)
  c1 = float(every("cell", y, jnp.int32(3), 0))           # block 3: cell 2 of stage 0 (N=5)
  np.testing.assert_allclose(c1, np_lambda(y), rtol=1e-4)
  np.testing.assert_allclose(float(every("cell", y, jnp.int32(5), 0)), 2 * c1, rtol=1e-5)
  assert float(tap("none", y, 1, 0)) == 0.0


def test_meco_needs_the_nb201_taps():
  space = spaces.get_space("darts")
  net = spaces.network(space, np.asarray(space.sample(jax.random.key(0), 1))[0])
  with pytest.raises(JaxnasInputError, match="tap"):
    meco.meco_score(net, None, jnp.zeros((1, 8, 8, 3)))
