"""Checks every registered proxy must pass (in the manner of optax's contrib common tests).

For each proxy, on tiny NB201 networks (C=4, N=1, 8x8 real images): a finite scalar for degenerate
and ordinary architectures, deterministic for a fixed key, jit equals no-jit (on the unrolled
network, the engine's ``'eager'`` executor), ``vmap`` over architectures equals one-by-one, and the engine traces one function per proxy whatever the number
of architectures and chunks.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import engine, spaces
from jaxnas.proxies import get_proxy, list_proxies
from jaxnas.spaces import nb201
from tests.conftest import TINY, tiny_batch_of


# all-none (degenerate: output independent of the input), all-conv3x3, and ordinary cells
ARCHS = np.stack([np.zeros(6, np.int32), np.full(6, 3, np.int32), nb201.from_index(180),
                  nb201.from_index(9930)])


def _score_fn(name, unrolled=False):
  proxy = get_proxy(name)
  space = spaces.get_space("nb201")
  module = engine.scoring.module_for(space, proxy, dict(TINY, unrolled=unrolled))

  def fn(arch, batch, key):
    net = spaces.Network(space, module, arch)
    k_init, k_proxy = jax.random.split(key)
    variables = net.init(k_init, batch.x) if proxy.needs_variables else None
    return jnp.asarray(proxy.fn(net, variables, batch, k_proxy)).reshape(())
  return proxy, fn


def _batch_for(proxy):
  return tiny_batch_of(16 if proxy.needs_data else 1)


@pytest.mark.parametrize("name", list_proxies())
def test_proxy_contract(name):
  """Two compilations per proxy (they dominate the cost of this test on tiny networks): the
  jitted ``vmap`` over all architectures, and the un-jitted (eager) call on one of them."""
  proxy, fn = _score_fn(name)
  batch = _batch_for(proxy)
  key = jax.random.key(3)
  with engine.scoring.x64_context(proxy):
    batched_fn = jax.jit(jax.vmap(fn, in_axes=(0, None, None)))
    batched = np.asarray(batched_fn(ARCHS, batch, key))
    assert batched.shape == (len(ARCHS),)
    assert np.all(np.isfinite(batched)), f"{name} gave non-finite scores {batched}"
    # deterministic for a fixed key (and independent of the other architectures in the batch)
    np.testing.assert_array_equal(np.asarray(batched_fn(ARCHS, batch, key)), batched)
    swapped = np.asarray(batched_fn(ARCHS[::-1], batch, key))[::-1]
    np.testing.assert_allclose(swapped, batched, rtol=2e-3, atol=1e-6, err_msg=name)
    # without jit, on the unrolled network of concrete architectures (the engine's 'eager'
    # executor), the degenerate and an ordinary architecture equal their jitted vmap entries
    _, eager_fn = _score_fn(name, unrolled=True)
    for i in (0, 2):
      eager = float(eager_fn(np.asarray(ARCHS[i]), batch, key))
      np.testing.assert_allclose(eager, batched[i], rtol=2e-3, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", list_proxies())
def test_proxy_is_documented_and_registered_once(name):
  proxy = get_proxy(name)
  doc = proxy.fn.__doc__ or ""
  assert len(doc.strip()) > 40, f"{name} needs a docstring with its formula and source"
  assert proxy.name == name


def test_engine_traces_once_per_proxy(monkeypatch):
  """Scoring 11 architectures in chunks of 4 (last one padded) traces the proxy exactly once."""
  batch = tiny_batch_of(8)
  archs = nb201.from_index(np.arange(0, 15625, 1500))
  base = get_proxy("params")
  counted = base._replace(fn=chex.assert_max_traces(base.fn, n=1))
  monkeypatch.setattr(engine.scoring, "get_proxy", lambda name: counted)
  out = engine.score("nb201", archs, ["params"], batch, config=dict(TINY), chunk_size=4)
  np.testing.assert_allclose(out["params"],
                             nb201.count_params(archs, **TINY) / 1e6, rtol=1e-6)
