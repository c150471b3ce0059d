"""``ensemble``: a fixed linear combination of standardised proxy scores (this library's own).

  E(A) = sum_m w_m (t_m(s_m(A)) - mu_m) / sigma_m,

over members ``m`` (registered proxies), each score ``s_m`` transformed by ``t_m`` (``log1p`` for
SynFlow, which spans 40 orders of magnitude and is exactly 0 for cells cut off from their input;
``log`` for #params / FLOPs; the identity for NASWOT's log-determinant and jacob_cov), standardised with a mean
and deviation, and weighted. The members, transforms, ``mu``, ``sigma`` and ``w`` are data,
``jaxnas/_assets/ensemble.json``, written by ``experiments/fit_ensemble.py``: the weights maximise
the Spearman correlation with *CIFAR-100* 200-epoch test accuracy over a grid on the simplex (step
0.1), on one seeded half of the 15,125 NB201 architectures outside the 500-architecture subset;
the other half, the subset, CIFAR-10 and ImageNet16-120 are never used in the fit (the JSON
records the fit set and the held-out figures; over all 15,625 architectures the ensemble's
Spearman rho with CIFAR-10 test accuracy is 0.856). Members with weight 0 are dropped. Training-free: scoring an architecture runs only the member
proxies at initialisation.

Each member runs exactly as when called on its own (its own module overrides, its batch, the same
key and, through :mod:`jaxnas.engine`, the same float32-drawn weights although ``ensemble`` runs
with 64-bit floats on), so ``ensemble`` equals :func:`combine` of the members' stand-alone scores
(tested through the engine).
"""

from __future__ import annotations

import functools
import json

import jax.numpy as jnp
import numpy as np

from jaxnas import _assets
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies.registry import get_proxy, register

ASSET = "ensemble.json"
TRANSFORMS = ("log", "log1p", "identity")


@functools.lru_cache(maxsize=1)
def coefficients() -> dict:
  """The fitted members: ``{'members': [{'name', 'transform', 'mean', 'std', 'weight'}], ...}``."""
  with open(_assets.path(ASSET), encoding="utf-8") as f:
    spec = json.load(f)
  for m in spec["members"]:
    if m["transform"] not in TRANSFORMS:
      raise JaxnasInputError(f"ensemble member {m['name']!r}: transform {m['transform']!r} "
                             f"not in {TRANSFORMS}")
  return spec


def _transform(x, kind, xp):
  if kind == "log":
    return xp.log(xp.maximum(xp.abs(x), 1e-300 if xp is np else 1e-30))
  if kind == "log1p":  # scores that can be exactly 0 (SynFlow of a cell cut off from the input)
    return xp.log1p(xp.abs(x))
  return x


def combine(scores: dict, spec: dict | None = None) -> np.ndarray:
  """The ensemble from precomputed member scores ``{name: (n,) array}`` (numpy, float64)."""
  spec = spec or coefficients()
  total = 0.0
  for m in spec["members"]:
    if m["name"] not in scores:
      raise JaxnasInputError(f"ensemble needs scores of {m['name']!r}; got {sorted(scores)}")
    t = _transform(np.asarray(scores[m["name"]], np.float64), m["transform"], np)
    total = total + m["weight"] * (t - m["mean"]) / m["std"]
  return np.asarray(total)


#: What the members use from the network (nwot's ReLU probe); tests/proxies check it against the
#: members' own requirements.
REQUIRES = ("relu_probe",)


@register("ensemble", batch_size=64, x64=True, requires=REQUIRES)
def ensemble(net, variables, batch, key):
  """Fitted combination of standardised zero-cost proxy scores (this library; members in the asset).

  ``sum_m w_m (t_m(s_m) - mu_m) / sigma_m`` over the members; coefficients in
  ``jaxnas/_assets/ensemble.json`` (fitted on CIFAR-100 accuracy of a disjoint half of a uniform
  NB201 sample by ``experiments/fit_ensemble.py``).

  Runs with 64-bit floats enabled because SynFlow needs them; members that read data use
  ``batch`` (64 images by default, the batch of NASWOT and jacob_cov).
  """
  total = jnp.zeros((), jnp.float64)
  for m in coefficients()["members"]:
    proxy = get_proxy(m["name"])
    member_net = net.replace(**dict(proxy.config)) if proxy.config else net
    s = proxy.fn(member_net, variables if proxy.needs_variables else None, batch, key)
    t = _transform(jnp.asarray(s, jnp.float64), m["transform"], jnp)
    total = total + m["weight"] * (t - m["mean"]) / m["std"]
  return total
