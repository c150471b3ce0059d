"""``ensemble_v2`` (and its forward-only ``ensemble_v2_fwd``): weighted log-rank combinations of
proxies over a candidate pool (this library's own; AZ-NAS' aggregation with fitted weights).

  E(A) = sum_m w_m ln(rank_m(A) / N)

over the members ``m`` (registered proxies, each oriented by its ``higher_is_better``), ranks
ascending over the ``N`` candidates of the pool with ties averaged; NaN, -inf and values at or
below :data:`jaxnas.proxies._pool.DEGENERATE` rank at the bottom (tied). Pool-relative: registered
with :func:`jaxnas.proxies.registry.register_pooled`, so ``jaxnas score`` stores the members and
``correlate`` / the searches rank over their set.

The members and weights are data, ``jaxnas/_assets/ensemble_v2*.json``, written by
``experiments/fit_ensemble_v2.py``: weights maximise Spearman's rho with CIFAR-100 200-epoch test
accuracy over a simplex grid on one seeded half of a uniform NB201 sample; the other half,
CIFAR-10 and ImageNet16-120 are never used in the fit (the asset records the fit and the held-out
figures). An asset that is absent registers nothing.
"""

from __future__ import annotations

import json
from typing import Mapping

import numpy as np

from jaxnas import _assets
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies._pool import log_ranks
from jaxnas.proxies.registry import get_proxy, register_pooled

ASSETS = ("ensemble_v2.json", "ensemble_v2_fwd.json")


def combine(scores: Mapping[str, np.ndarray], spec: dict, oriented: bool = True) -> np.ndarray:
  """``sum_m w_m log_ranks(s_m)`` over the members of ``spec`` (``{'members': [{'name',
  'weight'}]}``). ``oriented``: the scores are already multiplied by their proxy's orientation
  (else each lower-is-better member is negated here)."""
  total = 0.0
  for m in spec["members"]:
    if m["name"] not in scores:
      raise JaxnasInputError(f"{spec.get('name', 'ensemble_v2')} needs scores of {m['name']!r}; "
                             f"got {sorted(scores)}")
    v = np.asarray(scores[m["name"]], np.float64)
    if not oriented and not get_proxy(m["name"]).higher_is_better:
      v = -v
    total = total + m["weight"] * log_ranks(v)
  return np.asarray(total, np.float64)


def coefficients(name: str = "ensemble_v2") -> dict:
  """The shipped spec ``{'name', 'members': [{'name', 'weight'}], 'fit': ...}`` of ``name``
  (``'ensemble_v2'`` or ``'ensemble_v2_fwd'``), read from its asset."""
  asset = f"{name}.json"
  if asset not in ASSETS:
    raise JaxnasInputError(f"unknown ensemble {name!r}; allowed: "
                           f"{', '.join(a[:-5] for a in ASSETS)}")
  with open(_assets.path(asset), encoding="utf-8") as f:
    return json.load(f)


def _register(asset: str) -> None:
  if not _assets.path(asset).is_file():
    return
  spec = coefficients(asset[:-5])

  def pooled(scores):
    return combine(scores, spec, oriented=False)
  fit = spec.get("fit", {})
  pooled.__doc__ = (f"Weighted log-rank sum of {', '.join(m['name'] for m in spec['members'])} "
                    f"(this library; fitted on {fit.get('target', 'CIFAR-100')}).")
  register_pooled(spec["name"], components=[m["name"] for m in spec["members"]])(pooled)


for _asset in ASSETS:
  _register(_asset)
