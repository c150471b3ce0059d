"""SWAP: sample-wise activation patterns (Peng, Song, Fayek, Ciesielski, Chang, "SWAP-NAS:
Sample-Wise Activation Patterns for Ultra-fast NAS", ICLR 2024, arXiv 2403.04161; code
pym1024/SWAP ``src/metrics/swap.py``, methods-spec §12).

Every ReLU of the network whose input is 4-D contributes its output, flattened per sample; the
outputs are concatenated into ``A`` ``(B, M)`` and each neuron's *pattern* is its column of
``sign(A)`` (a B-bit vector: which samples activate it)::

    swap = #{ distinct columns of 1[A > 0] }       (1 <= swap <= min(M, 2^B); higher is better)

averaged over :data:`REPEATS` = 32 re-initialisations (conv and dense weights N(0, 1), biases 0,
BN scale 1 and bias 0; the reference's ``network_weight_gaussian_init``), the network in train
mode (batch statistics over the B samples), one fixed batch of 16 images for every architecture.
In NB201 the ReLUs are those heading every conv op (cell edges: the ReLU of the op's input node,
once per conv op), both ReLUs of each reduction block and the head's ReLU: exactly the ReLUs of
``NB201Net.relu_probe`` (whose input ``x`` has the codes of ``relu(x)``: ``relu(x) > 0 iff
x > 0``). Duplicated ReLUs do not change the count. In DARTS (the unrolled supernet, mode
``'eager'``) they are the ReLUs heading each cell's two preprocessing ops and its kept sep_conv
(two), dil_conv and stride-2 skip ops; the stem and head have none.

Counting: each ReLU's probe packs a neuron's B bits into an integer code and returns the
histogram of codes over the ``2^B`` possible patterns; the network sums the histograms and swap
is the number of non-empty bins (exact; integer arithmetic).

**Regularised SWAP** (``cal_regular_factor``)::

    reg_swap = swap * exp(-(Theta - mu)^2 / sigma),   Theta = number of parameters / 1e3

with no factor 2 and no square on ``sigma``, ``mu`` and ``sigma`` in thousands of parameters.
Their NB201 values are not published (the public code leaves ``regular=False``), so Reg-SWAP is
not registered with invented defaults: build it with :func:`make_swap_reg` (or register it under
a name of your choice with :func:`register_swap_reg`) and record ``mu`` and ``sigma`` with the
results. The factor underflows to 0 far from ``mu`` (score 0, finite).

Deviations: the NB201 protocol of the paper (network width, B, R) is unpublished; we use the
configured network (the standard NB201 network by default) and the reference script's B = 16,
R = 32. Batches larger than :data:`BATCH_SIZE` are truncated to their first 16 images (the
reference takes the first 16 images of the training set; the histogram has ``2^B`` bins). The
re-initialisations are drawn from the proxy's key (the reference never seeds them).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxnas._loops import map_rows
from jaxnas.errors import JaxnasInputError
from jaxnas.proxies.registry import get_proxy, register
from jaxnas.proxies.zen import gaussian_init
from jaxnas.spaces import sum_probes

#: Samples per batch (the reference's ``--input_samples``); larger batches are truncated.
BATCH_SIZE = 16
#: Re-initialisations averaged (the reference's ``--repeats``).
REPEATS = 32
#: Train-mode BN.
CONFIG = {"bn": "batch"}
#: Whether the re-initialisations of a concrete unrolled network run as one compiled program per
#: architecture (False: op by op, ``experiments/bench_swap_rows.py``'s baseline).
COMPILE_ROWS = True


def pattern_histogram(x):
  """Histogram ``(2^B,)`` int32 of the activation patterns of one ReLU with input ``x``.

  Neuron ``j``'s pattern is ``sum_b 1[x_b,j > 0] 2^b`` over the ``B <= 16`` samples.
  """
  b = x.shape[0]
  bits = (x > 0).reshape(b, -1).astype(jnp.int32)
  codes = jnp.sum(bits << jnp.arange(b, dtype=jnp.int32)[:, None], axis=0)
  return jnp.zeros((2**b,), jnp.int32).at[codes].add(1)


def pattern_stats(net, params, x):
  """``(swap, M)``: distinct activation patterns of ``net`` (``params`` only, train-mode BN) on
  ``x``, and the number of ReLU neurons ``M`` (with multiplicity). ``swap / min(M, 2^B)`` is the
  saturation (methods-spec §12.1: at B = 16 the full-size NB201 network reaches most of the
  65,536 possible patterns)."""
  fields = getattr(net.module, "__dataclass_fields__", {})
  if "relu_probe" not in fields:
    raise JaxnasInputError(f"SWAP needs the network's ReLU probe (relu_probe); the "
                           f"{net.space.name!r} network has none")
  if not 1 <= x.shape[0] <= BATCH_SIZE:
    raise JaxnasInputError(f"SWAP counts patterns over 1 to {BATCH_SIZE} samples, got "
                           f"{x.shape[0]}")
  _, st = net.replace(relu_probe=pattern_histogram).apply({"params": params}, x,
                                                          mutable=["intermediates"])
  hist = sum_probes(st["intermediates"])
  return jnp.sum(hist > 0), jnp.sum(hist)


def swap_count(net, params, x):
  """Number of distinct activation patterns of ``net`` (params only, train-mode BN) on ``x``."""
  return pattern_stats(net, params, x)[0]


def swap_repeats(net, x, key, repeats: int = REPEATS):
  """SWAP of each of ``repeats`` N(0, 1) re-initialisations (keys split from ``key``) ``(R,)``.

  On a concrete unrolled network (the ``'eager'`` executor) the re-initialisation and count are
  compiled once per architecture and run ``repeats`` times (:func:`jaxnas._loops.map_rows`'s
  ``compile_rows``): 1.7x faster on NB101 than op by op, even on DARTS."""
  shapes = jax.eval_shape(net.init, key, x)["params"]
  return map_rows(lambda k: swap_count(net, gaussian_init(shapes, k), x).astype(jnp.float32),
                  jax.random.split(key, repeats), getattr(net, "unrolled", False),
                  compile_rows=COMPILE_ROWS)


@register("swap", batch_size=BATCH_SIZE, needs_variables=False, config=CONFIG,
          requires=("relu_probe",))
def swap(net, variables, batch, key):
  """SWAP: distinct sample-wise ReLU activation patterns, mean of 32 N(0,1) inits (Peng et al.
  ICLR 2024).

  ``#{distinct columns of 1[A > 0]}``, ``A`` ``(B, M)`` the concatenated outputs of every ReLU
  (B = first 16 images, train-mode BN); conv/dense weights N(0, 1), biases 0, BN 1/0, redrawn
  per repeat (pym1024/SWAP ``SWAP``).
  """
  del variables
  return jnp.mean(swap_repeats(net, batch.x[:BATCH_SIZE], key))


def regular_factor(theta, mu: float, sigma: float):
  """Reg-SWAP's factor ``exp(-(theta - mu)^2 / sigma)`` (``theta`` in thousands of parameters)."""
  return jnp.exp(-jnp.square(theta - mu) / sigma)


def make_swap_reg(mu: float, sigma: float):
  """The Reg-SWAP proxy function ``fn(net, variables, batch, key)`` for given ``mu``, ``sigma``
  (thousands of parameters; ``sigma > 0``)."""
  try:
    mu, sigma = float(mu), float(sigma)
  except (TypeError, ValueError):
    raise JaxnasInputError(f"Reg-SWAP mu and sigma must be numbers, got {mu!r}, {sigma!r}")
  if not (math.isfinite(mu) and math.isfinite(sigma) and sigma > 0):
    raise JaxnasInputError(f"Reg-SWAP needs a finite mu and a finite sigma > 0, got mu={mu}, "
                           f"sigma={sigma}")

  def swap_reg(net, variables, batch, key):
    theta = net.space.count_params(net.arch, **net.config()) / 1e3
    return swap(net, variables, batch, key) * regular_factor(theta, mu, sigma)

  swap_reg.__doc__ = (
      f"Regularised SWAP: swap * exp(-(Theta - {mu:g})^2 / {sigma:g}), Theta = parameters / 1e3 "
      f"(Peng et al. ICLR 2024, cal_regular_factor); swap as the 'swap' proxy.")
  return swap_reg


def register_swap_reg(mu: float, sigma: float, name: str = "swap_reg"):
  """Registers Reg-SWAP with ``mu``, ``sigma`` under ``name`` (once per name); returns the
  :class:`jaxnas.proxies.Proxy`."""
  register(name, batch_size=BATCH_SIZE, needs_variables=False, config=CONFIG,
           requires=("relu_probe",))(make_swap_reg(mu, sigma))
  return get_proxy(name)
