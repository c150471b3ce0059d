"""What proxies need from a network (``Proxy.requires``) against what spaces offer
(``SearchSpace.capabilities``): refused at selection time, with a message naming all three."""

import jax
import numpy as np
import pytest

from jaxnas import engine, spaces
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import (check_supported, get_pooled, get_proxy, list_pooled, list_proxies,
                            missing_capabilities, supported_proxies)
from jaxnas.proxies import ensemble as ensemble_mod
from tests.conftest import tiny_batch_of

DARTS_TINY = dict(C=4, L=3)


def _darts():
  return spaces.get_space("darts")


def test_every_requirement_is_a_capability_some_space_offers():
  offered = set().union(*(spaces.get_space(s).capabilities() for s in spaces.list_spaces()))
  for name in list_proxies():
    assert get_proxy(name).needs <= offered, (name, get_proxy(name).needs - offered)


def test_nb201_runs_every_proxy_and_darts_lacks_the_nb201_hooks():
  nb = spaces.get_space("nb201")
  assert supported_proxies(nb) == list_proxies() + list_pooled()
  d = _darts()
  assert {"relu_probe", "bn", "unrolled"} <= d.capabilities()   # the probe: unrolled build only
  for name in ("nwot", "swap", "tenas_regions", "ensemble", "fisher"):
    assert missing_capabilities(name, d) == [], name
  assert missing_capabilities("zen", d) == ["features"]
  assert missing_capabilities("tenas_ntk_cond", d) == ["nonlinear_readout"]   # Theta 1 = 0
  assert missing_capabilities("tenas_ntk_cond", "nb101") == []
  assert missing_capabilities("aznas", d) == ["block_input", "block_shapes", "tap"]   # members
  assert missing_capabilities("aznas", "nb101") == []
  assert {"params", "synflow", "grad_norm", "epsilon", "jacob_cov"} <= set(supported_proxies(d))


def test_a_space_name_stands_for_its_space():
  assert supported_proxies("nb101") == supported_proxies(spaces.get_space("nb101"))
  assert missing_capabilities("zen", "darts") == ["features"]
  with pytest.raises(JaxnasInputError, match="'zen' needs 'features'.*'darts'"):
    check_supported(["zen"], "darts")
  with pytest.raises(JaxnasInputError, match="nope"):
    supported_proxies("nope")


def test_pooled_and_ensemble_needs_cover_their_members():
  for name in list_pooled():
    need = set().union(*(get_proxy(c).needs for c in get_pooled(name).components))
    assert set(missing_capabilities(name, _darts())) == need - _darts().capabilities()
  members = [m["name"] for m in ensemble_mod.coefficients()["members"]]
  need = set().union(*(get_proxy(m).requires for m in members))
  assert need <= get_proxy("ensemble").needs


@pytest.mark.parametrize("name", [n for n in list_proxies()
                                  if missing_capabilities(n, spaces.get_space("darts"))])
def test_unsupported_proxy_is_refused_before_tracing(name, monkeypatch):
  def no_trace(*a, **k):
    raise AssertionError("traced before the capability check")
  monkeypatch.setattr(engine.scoring, "_cached_score_fn", no_trace)
  monkeypatch.setattr(engine.scoring, "_build_score_fn", no_trace)
  archs = _darts().sample(jax.random.key(0), 1)
  with pytest.raises(JaxnasInputError, match=f"proxy '{name}' needs .* the 'darts' space does not "
                                             "provide; proxies that run on 'darts': .*params"):
    engine.score("darts", archs, [name], tiny_batch_of(1), config=DARTS_TINY)


@pytest.mark.parametrize("name", ["zen", "meco"])
def test_the_declarations_are_needed(name):
  """Bypassing the check, these proxies do fail inside Flax/JAX on the DARTS network."""
  proxy = get_proxy(name)
  d = _darts()
  module = d.model(**DARTS_TINY, **dict(proxy.config))
  net = spaces.Network(d, module, np.asarray(d.sample(jax.random.key(0), 1))[0])
  batch = tiny_batch_of(4)
  with pytest.raises(Exception):  # noqa: B017 - whatever Flax raises; the point is that it does
    jax.eval_shape(lambda: proxy.fn(net, net.init(jax.random.key(0), batch.x), batch,
                                    jax.random.key(1)))


@pytest.mark.parametrize("name", ["params", "l2_norm", "epsilon"])
def test_supported_proxies_run_on_darts(name):
  """A cheap sample of the DARTS-supported proxies (all 20 take ~8 min to compile; run
  ``experiments/space_contract.py`` for every one): finite, deterministic, map == vmap."""
  archs = np.asarray(_darts().sample(jax.random.key(2), 2))
  batch = tiny_batch_of(16)
  a = engine.score("darts", archs, [name], batch, config=DARTS_TINY, chunk_size=2, mode="map")
  b = engine.score("darts", archs, [name], batch, config=DARTS_TINY, chunk_size=1, mode="map")
  assert np.all(np.isfinite(a[name]))
  np.testing.assert_allclose(a[name], b[name], rtol=1e-5)


def test_check_supported_accepts_proxy_objects():
  check_supported([get_proxy("params"), "grad_norm"], _darts())
  with pytest.raises(JaxnasInputError, match="'meco' needs 'tap'"):
    check_supported([get_proxy("meco")], _darts())
