"""epsinas: output dispersion between two constant-weight initialisations (Gracheva, arXiv
2302.04406, Artificial Intelligence Review 2025; code egracheva/epsinas, methods-spec §3).

The network has one output per image (``num_classes=1``) and BatchNorm in train mode (batch
statistics, eps 1e-5, biased variance; affine cell BN). For each weight ``w`` in
:data:`WEIGHTS` = (1e-7, 1) every conv/dense kernel and every BN scale is set to the constant
``w`` and every bias to 0; ``y^(w)`` ``(B,)`` is the output on one fixed batch (256 images in the
paper, labels unused). Then::

    p^(w) = (y^(w) - min y^(w)) / (max y^(w) - min y^(w))           (min-max normalisation)
    entries with p == 0 are set to NaN (in each vector separately)
    eps   = nanmean_i |p^(1)_i - p^(2)_i| / nanmean_{i, w} p^(w)_i   (the denominator pools both)

Higher is better. Label- and gradient-free; invariant to any positive affine rescaling of either
output vector; deterministic (no randomness at all).

The score depends on float32 and BN's eps: with w = 1e-7 the pre-BN variances fall far below
eps = 1e-5, so BN stops normalising; the dispersion between the two runs comes from this regime
change (methods-spec §3.1). Keep float32 and PyTorch's BN eps.

Deviation: a constant output (max = min) or no index where both vectors are non-zero gives NaN in
the reference, which drops it from its statistics; we return 0, the lowest possible score
(eps >= 0).

.. warning:: This is common on NB201, not only for cells of ``none`` edges. At w = 1e-7 every
   ReLU-conv-BN scales its input by about ``w^2 fan_in / sqrt(eps)`` ~ 1e-10, so in a cell whose
   every input-to-output path crosses a conv (no path of ``skip_connect``/``avg_pool_3x3`` edges;
   41% of the 15,625 cells) the signal underflows float32 to exactly 0 within a stage and the
   output is constant (PyTorch float32 underflows the same way). On the first 100 architectures
   of the NASLib subset 38 score 0; they are on average *better* architectures, so correlations
   over all architectures are far below those over the non-degenerate ones (the reference's
   protocol); see ``experiments/results/proxies_act_sanity.json``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnas.proxies.registry import register
from jaxnas.spaces import params as P

#: The two constant weights for NB201 (NB101: (1e-4, 10); NAS-Bench-NLP: (1e-5, 1e-3)). A space
#: whose benchmark the paper tuned says so in ``proxy_settings['epsilon']['weights']`` (NB101,
#: methods-spec §13.3.2); one it did not tune (DARTS) uses these.
WEIGHTS = (1e-7, 1.0)
#: Minibatch size of the reference.
BATCH_SIZE = 256
#: The score of an architecture the reference cannot score (constant outputs: NaN there, left out
#: of its statistics; here the minimum, so rankings stay defined).
UNDEFINED = 0.0
_BIASES = ("conv_bias", "dense_bias", "bn_bias")


def constant_params(shapes, w: float):
  """Every weight (conv/dense kernel, BN scale) = ``w``, every bias = 0 (epsinas initialisation).

  ``shapes``: a parameter tree of arrays or ``jax.ShapeDtypeStruct``.
  """
  return jax.tree_util.tree_map_with_path(
      lambda p, s: jnp.full(s.shape, 0.0 if P.kind_of(p) in _BIASES else w, s.dtype), shapes)


def _minmax(y):
  lo, hi = jnp.min(y), jnp.max(y)
  span = hi - lo
  return (y - lo) / jnp.where(span > 0, span, 1.0), span > 0


def score_from_outputs(y1, y2):
  """epsinas score of two output vectors ``(B,)`` (see module docstring); 0 where undefined."""
  p1, ok1 = _minmax(jnp.ravel(y1))
  p2, ok2 = _minmax(jnp.ravel(y2))
  m1, m2 = p1 != 0, p2 != 0
  both = m1 & m2
  n_both = jnp.sum(both)
  mae = jnp.sum(jnp.where(both, jnp.abs(p1 - p2), 0.0)) / jnp.maximum(n_both, 1)
  mean = (jnp.sum(jnp.where(m1, p1, 0.0)) + jnp.sum(jnp.where(m2, p2, 0.0))) / jnp.maximum(
      jnp.sum(m1) + jnp.sum(m2), 1)
  ok = ok1 & ok2 & (n_both > 0) & (mean > 0)
  eps = mae / jnp.where(ok, mean, 1.0)
  return jnp.where(ok & jnp.isfinite(eps), eps, UNDEFINED)


def outputs(net, x, w: float):
  """Outputs ``(B,)`` of the single-output network with every weight ``w`` and biases 0."""
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), x))["params"]
  y = net.apply({"params": constant_params(shapes, w)}, x.astype(jnp.float32))
  return y[:, 0]


@register("epsilon", needs_variables=False, batch_size=BATCH_SIZE,
          config={"num_classes": 1, "bn": "batch"})
def epsilon(net, variables, batch, key):
  """epsinas: eps = nanmean|p1 - p2| / nanmean(p1, p2) of min-max-normalised outputs (Gracheva).

  ``p_k`` = min-max-normalised outputs ``(B,)`` of the ``num_classes=1`` network with every weight
  (BN scale, classifier included) = ``w_k``, biases 0, train-mode BN, for ``w = (1e-7, 1)``
  (NB101: ``(1e-4, 10)``, the space's ``proxy_settings``); zeros set to NaN. Constant outputs
  (reference: NaN) score 0, the minimum.
  """
  del variables, key
  weights = net.space.proxy_setting("epsilon", "weights", WEIGHTS)
  y1, y2 = (outputs(net, batch.x, w) for w in weights)
  return score_from_outputs(y1, y2)
