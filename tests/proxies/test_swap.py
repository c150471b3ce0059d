"""SWAP: the pattern count against a pure-Python ``set`` of activation columns over every ReLU
output of an independent forward pass (same N(0, 1) weights), the ReLU multiset, the average over
re-initialisations, bounds, and the regularised form."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import engine, spaces
from jaxnas.data import Batch
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import get_proxy, registry, swap, zen
from jaxnas.spaces import nb201
from tests.conftest import TINY, tiny_batch_of
from tests.proxies.nb201_reference import Net


def python_swap(relus):
  """Distinct columns of sign(A), A = the ReLU outputs flattened per sample and concatenated."""
  a = np.concatenate([np.asarray(r).reshape(r.shape[0], -1) for r in relus], axis=1)
  return len({tuple(col) for col in (np.sign(a) > 0).T}), a.shape[1]


@functools.lru_cache(maxsize=None)
def _fns():
  space = spaces.get_space("nb201")
  module = engine.scoring.module_for(space, get_proxy("swap"), dict(TINY))
  net = spaces.Network(space, module, np.zeros(6, np.int32))

  def params(key, x, a):
    return zen.gaussian_init(jax.eval_shape(net._replace(arch=a).init, key, x)["params"], key)

  def count(p, x, a):
    return swap.pattern_stats(net._replace(arch=a), p, x)

  score = jax.jit(lambda x, key, a: get_proxy("swap").fn(net._replace(arch=a), None,
                                                         Batch(x, None), key))
  return net, jax.jit(params), jax.jit(count), score


@pytest.mark.parametrize("arch", [np.zeros(6, np.int32), nb201.from_index(180),
                                  nb201.from_index(9930)])
def test_count_against_python_set_over_independent_forward(arch):
  net, params, count, _ = _fns()
  x = tiny_batch_of(swap.BATCH_SIZE).x
  p = params(jax.random.key(0), x, arch)
  # the reference's initialisation: conv/dense weights N(0, 1), biases 0, BN 1 / 0
  assert float(jnp.std(p["cells_2"]["conv3x3"]["kernel"])) == pytest.approx(1.0, abs=0.15)
  assert float(jnp.sum(jnp.abs(p["classifier"]["bias"]))) == 0.0
  ref_net = Net(p, arch, TINY["N"])
  ref_net.forward(x)
  ref, m = python_swap(ref_net.relus)
  got, neurons = count(p, x, arch)
  assert int(neurons) == m                 # every ReLU, with multiplicity, and nothing else
  # the count itself is exact; a value within float round-off of 0 may flip sign between two
  # implementations of the forward pass, so allow one pattern in a thousand
  assert abs(int(got) - ref) <= max(1, ref // 1000), (int(got), ref)
  assert 1 <= int(got) <= min(m, 2 ** swap.BATCH_SIZE)
  if not arch.any():   # no cell ReLU: everything after the stem is 0, one pattern
    assert ref == 1 and int(got) == 1


def test_pattern_histogram_counts_distinct_columns_exactly():
  rng = np.random.default_rng(0)
  for b, m in ((16, 3000), (5, 200), (1, 27)):
    a = rng.normal(size=(b, m)) * (rng.random((b, m)) > 0.3)
    a[:, 10:20] = a[:, :10] * 2.0              # duplicated patterns
    hist = jax.jit(swap.pattern_histogram)(jnp.asarray(a, jnp.float32))
    assert int(jnp.sum(hist)) == m
    ref, _ = python_swap([np.maximum(a, 0)])
    assert int(jnp.sum(hist > 0)) == ref
    # permuting the samples permutes the bits of every code: same number of patterns
    perm = rng.permutation(b)
    assert int(jnp.sum(swap.pattern_histogram(jnp.asarray(a[perm])) > 0)) == ref


def test_proxy_is_the_mean_over_reinitialisations_and_truncates_the_batch():
  net, params, count, score = _fns()
  a = nb201.from_index(180)
  x = tiny_batch_of(20).x
  key = jax.random.key(4)
  keys = jax.random.split(key, swap.REPEATS)
  x16 = x[:swap.BATCH_SIZE]
  counts = [int(count(params(k, x16, a), x16, a)[0]) for k in keys[:3]]
  assert len(set(counts)) > 1               # the repeats draw different weights
  got = float(score(x, key, a))
  ref = np.mean([int(count(params(k, x16, a), x16, a)[0]) for k in keys])
  np.testing.assert_allclose(got, ref, rtol=1e-6)
  assert counts[0] == int(count(params(keys[0], x16, a), x16, a)[0])
  with pytest.raises(JaxnasInputError, match="1 to 16 samples"):
    swap.swap_count(net, None, jnp.zeros((17, 8, 8, 3)))


def test_regularised_swap(monkeypatch):
  _, _, _, score = _fns()
  a = nb201.from_index(180)
  theta = nb201.count_params(a, **TINY) / 1e3        # exact, in thousands
  x = tiny_batch_of(20).x                             # the shape compiled above
  key = jax.random.key(5)
  plain = float(score(x, key, a))
  net = spaces.network("nb201", a, bn="batch", **TINY)
  mu, sigma = theta + 2.0, 8.0
  fn = swap.make_swap_reg(mu, sigma)
  got = float(jax.jit(lambda x, k: fn(net, None, Batch(x, None), k))(x, key))
  np.testing.assert_allclose(got, plain * np.exp(-4.0 / 8.0), rtol=1e-5)
  # factor 1 at mu, symmetric about mu, decreasing in |Theta - mu|
  f = lambda t: float(swap.regular_factor(t, 10.0, 4.0))
  assert f(10.0) == 1.0 and f(8.0) == pytest.approx(f(12.0)) and f(13.0) < f(12.0) < f(11.0)
  assert float(swap.regular_factor(1e4, 0.0, 1.0)) == 0.0   # underflows to 0, stays finite
  for bad in ((1.0, 0.0), (1.0, -2.0), (np.nan, 1.0), ("a", 1.0)):
    with pytest.raises(JaxnasInputError):
      swap.make_swap_reg(*bad)
  # registering under a name (kept out of the global registry for the other tests)
  monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
  proxy = swap.register_swap_reg(theta, 2.0, name="swap_reg_test")
  assert proxy.name == "swap_reg_test" and not proxy.needs_variables
  assert "exp(-(Theta" in proxy.doc


def test_unrolled_repeats_compiled_once_equal_op_by_op(monkeypatch):
  """On a concrete unrolled network the 32 re-initialisations run as one program compiled per
  architecture (``COMPILE_ROWS``): the same score as op by op and as the traced network."""
  space = spaces.get_space("nb201")
  module = engine.scoring.module_for(space, get_proxy("swap"), dict(TINY, unrolled=True))
  a = nb201.from_index(9930)
  net = spaces.Network(space, module, a)
  assert net.unrolled
  x, key = tiny_batch_of(16).x, jax.random.key(7)
  traces = []
  real = swap.swap_count
  monkeypatch.setattr(swap, "swap_count", lambda *args: traces.append(1) or real(*args))
  compiled = np.asarray(swap.swap_repeats(net, x, key))
  assert len(traces) == 1                   # traced once, run for every repeat
  monkeypatch.setattr(swap, "COMPILE_ROWS", False)
  op_by_op = np.asarray(swap.swap_repeats(net, x, key))
  assert len(traces) == 1 + swap.REPEATS
  np.testing.assert_array_equal(compiled, op_by_op)
  traced = jax.jit(lambda k: swap.swap_repeats(net._replace(arch=jnp.asarray(a)), x, k))(key)
  np.testing.assert_array_equal(compiled, np.asarray(traced))
