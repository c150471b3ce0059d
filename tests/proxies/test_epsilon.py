"""epsinas: the score formula against a port of the reference (numpy NaN handling), invariance to
positive affine rescaling, the proxy against the discrete network with constant weights, and the
BatchNorm-eps sensitivity that shows the port follows PyTorch's numerics."""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import spaces
from jaxnas.data import Batch
from jaxnas.proxies import epsilon, get_proxy
from jaxnas.spaces import nb201
from jaxnas.spaces import ops as L
from tests.conftest import TINY, tiny_batch_of


def reference_score(y1, y2):
  """The reference ``compute_epsinas`` score on two output vectors (numpy, NaN semantics)."""
  preds = []
  for y in (y1, y2):
    y = np.asarray(y, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
      preds.append((y - np.nanmin(y)) / (np.nanmax(y) - np.nanmin(y)))
  preds = np.array(preds)
  preds[np.where(preds == 0.0)] = np.nan
  with warnings.catch_warnings():   # empty nanmean -> NaN, as in the reference
    warnings.simplefilter("ignore", RuntimeWarning)
    return np.nanmean(np.abs(preds[0] - preds[1])) / np.nanmean(preds)


def test_score_formula_matches_reference_with_ties_and_zeros():
  rng = np.random.default_rng(0)
  y1, y2 = rng.normal(size=64), rng.normal(size=64) ** 3
  y1[[3, 17]] = y1.min() - 1.0             # two samples share the minimum: both become NaN
  y2[40] = y2.min() - 0.5
  got = float(jax.jit(epsilon.score_from_outputs)(jnp.asarray(y1, jnp.float32),
                                                  jnp.asarray(y2, jnp.float32)))
  np.testing.assert_allclose(got, reference_score(y1, y2), rtol=1e-5)
  # undefined in the reference (constant output: NaN) -> 0, the lowest score
  assert np.isnan(reference_score(np.ones(8), y1[:8]))
  assert float(epsilon.score_from_outputs(jnp.ones(8), jnp.asarray(y1[:8]))) == 0.0
  assert float(epsilon.score_from_outputs(jnp.asarray([0.0, 1.0]), jnp.asarray([1.0, 0.0]))) == 0.0


def test_invariant_to_positive_affine_rescaling():
  rng = np.random.default_rng(1)
  y1 = jnp.asarray(rng.normal(size=256), jnp.float32)
  y2 = jnp.asarray(rng.gamma(2.0, size=256), jnp.float32)
  base = float(epsilon.score_from_outputs(y1, y2))
  for a1, b1, a2, b2 in ((3.5, 2.0, 0.25, -1.0), (1e-3, 7.0, 40.0, 0.5)):
    got = float(epsilon.score_from_outputs(a1 * y1 + b1, a2 * y2 + b2))
    np.testing.assert_allclose(got, base, rtol=1e-3)   # float32 rounding of the shifted outputs
  # but not to a negative scale (the argmin changes)
  assert abs(float(epsilon.score_from_outputs(-y1, y2)) - base) > 1e-3


def discrete_outputs(arch, x, weights=(1e-7, 1.0)):
  """Outputs of the discrete single-output network with every weight = w, biases 0 (by leaf
  name: ``bias`` -> 0, ``kernel`` / ``scale`` -> w), for each w."""
  disc = nb201.NB201Net(fixed_arch=tuple(arch), num_classes=1, **TINY)
  shapes = jax.eval_shape(disc.init, jax.random.key(0), x[:1])["params"]
  apply = jax.jit(disc.apply)
  out = []
  for w in weights:
    params = jax.tree_util.tree_map_with_path(
        lambda p, s: jnp.full(s.shape, 0.0 if p[-1].key == "bias" else w, s.dtype), shapes)
    out.append(np.asarray(apply({"params": params}, x))[:, 0])
  return out


def _proxy_fn():
  proxy = get_proxy("epsilon")
  assert proxy.batch_size == 256 and not proxy.needs_variables
  net = spaces.network("nb201", np.zeros(6, np.int32), **{**TINY, **dict(proxy.config)})
  return lambda x, a: proxy.fn(net._replace(arch=a), None, Batch(x, None), None)




def test_proxy_equals_discrete_network_and_depends_on_batch_norm_eps(monkeypatch):
  x = tiny_batch_of(32).x
  f = jax.jit(_proxy_fn())
  a = nb201.from_index(9930)          # has a skip_connect path from the cell input to its output
  got = float(f(x, a))
  ys = discrete_outputs(a, x)
  assert np.ptp(ys[0]) > 0 and np.ptp(ys[1]) > 0
  np.testing.assert_allclose(got, reference_score(*ys), rtol=1e-4)
  assert got > 0
  assert float(f(x, a)) == got                                  # deterministic
  # Degenerate cases score 0 where the reference gives NaN: the all-none cell (constant output),
  # and cells whose every path holds a conv: at w = 1e-7 each ReLU-conv-BN scales its input by
  # ~w^2 fan_in / sqrt(eps) ~ 1e-10, so the signal underflows float32 to exactly 0.
  assert float(f(x, np.zeros(6, np.int32))) == 0.0
  a = nb201.from_index(180)
  assert np.all(discrete_outputs(a, x, (1e-7,))[0] == 0.0)
  assert float(f(x, a)) == 0.0
  # BN eps sensitivity: with w = 1e-7 the pre-BN variances are far below eps = 1e-5, so BN does not
  # normalise: its output is (h - mean) / sqrt(eps) * w. A BN without that eps floor (or float64
  # arithmetic that keeps the signal from underflowing) normalises every layer and computes
  # another metric.
  a = nb201.from_index(9930)
  monkeypatch.setattr(L, "batch_norm", functools.partial(L.batch_norm, eps=1e-30))
  other = float(jax.jit(_proxy_fn())(x, a))        # a new trace picks up the patched layer
  assert abs(other - got) > 0.3 * got, (got, other)
