"""Zen-score: expressivity of the pre-pooling features under an input perturbation (Lin et al.,
"Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition", ICCV 2021).

We follow the public reference (idstcv/ZenNAS ``compute_zen_score.py``) as reused by NASLib
(``measures/zen.py``), data-free:

1. Re-initialise: conv and dense weights ``~ N(0, 1)`` (unscaled), their biases 0, BN scale 1 and
   bias 0; running statistics fresh (mean 0, var 1).
2. Draw ``x1, x2 ~ N(0, 1)`` of shape ``(64, H, W, 3)`` and ``xm = x1 + 0.01 x2``.
3. Two forward passes in **train mode** (batch statistics), ``f(x1)`` then ``f(xm)``, each
   updating the running statistics (momentum 0.1, unbiased variance); ``f`` is the feature map
   before global average pooling (after the head's BN-ReLU: NASLib's
   ``forward_before_global_avg_pool`` hooks the pooling input).
4. ``Delta = mean_b sum_{h,w,c} |f(x1) - f(xm)|``.
5. ``zen = log(Delta) + sum_{BN layers} log sqrt(mean_c running_var)``, the running variances read
   *after both passes*: ``0.81 + 0.09 v1 + 0.1 v2`` with ``v1, v2`` the unbiased batch variances
   of the two passes (the reference never resets them in between). Only the BN layers of
   operations the architecture uses are counted (the discrete network's modules).

Higher is better. Deviations: the 64 gaussian images are drawn here from ``key`` (the reference
uses the data loader's batch shape; NASLib's zero-cost batch is 64); the input resolution is taken
from ``batch.x``. A network whose pre-pooling features do not depend on the input
(``Delta = 0``, e.g. a cell of ``none`` edges; the reference gives ``log 0 = -inf``) gets
:data:`DEGENERATE` = -1000, below any attainable score (``log Delta >= log 1e-45 ~ -104`` and each
BN term ``>= log sqrt(0.81) ~ -0.105``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnas.proxies.registry import register
from jaxnas.spaces import params as P

#: Number of gaussian inputs (the reference's batch; NASLib's zero-cost batch size).
BATCH_SIZE = 64
#: Perturbation scale of the mixup input.
MIXUP_GAMMA = 1e-2
#: Score of networks whose features ignore the input (reference: -inf).
DEGENERATE = -1000.0


def gaussian_init(params, key):
  """Zen-NAS initialisation: conv/dense weights N(0, 1), biases 0, BN scale 1 and bias 0.

  ``params`` may hold arrays or ``jax.ShapeDtypeStruct`` leaves (only shapes and dtypes are read).
  """
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  out = []
  for i, (path, x) in enumerate(leaves):
    kind = P.kind_of(path)
    if kind in ("conv_kernel", "dense_kernel"):
      out.append(jax.random.normal(jax.random.fold_in(key, i), x.shape, x.dtype))
    elif kind == "bn_scale":
      out.append(jnp.ones(x.shape, x.dtype))
    else:  # conv/dense/BN biases
      out.append(jnp.zeros(x.shape, x.dtype))
  return jax.tree_util.tree_unflatten(treedef, out)


def log_bn_scaling(net, batch_stats):
  """``sum over the architecture's BN layers of log sqrt(mean_c running_var)``."""
  active = net.active(batch_stats)

  def leaf(path, v, m):
    if str(getattr(path[-1], "key", path[-1])) != "var":
      return jnp.float32(0.0)
    per_layer = 0.5 * jnp.log(jnp.mean(v, axis=-1))   # stacked layers keep their leading axes
    return jnp.sum(jnp.where(m > 0, per_layer, 0.0))

  return P.tree_sum(jax.tree_util.tree_map_with_path(leaf, batch_stats, active))


def _features(net, variables, x):
  _, state = net.apply(variables, x, mutable=["batch_stats", "intermediates"])
  return state["intermediates"]["features"][-1], state["batch_stats"]


def zen_terms(net, variables, x1, xm):
  """``(Delta, log_bn)`` of Zen-NAS for initialised ``variables`` (params + fresh batch_stats)."""
  f1, stats = _features(net, variables, x1)
  fm, stats = _features(net, {**variables, "batch_stats": stats}, xm)
  delta = jnp.mean(jnp.sum(jnp.abs(f1 - fm), axis=tuple(range(1, f1.ndim))))
  return delta, log_bn_scaling(net, stats)


def zen_inputs(key, shape):
  """``(x1, x1 + 0.01 x2)`` with ``x1, x2 ~ N(0, 1)`` of ``shape`` (NHWC)."""
  k1, k2 = jax.random.split(key)
  x1 = jax.random.normal(k1, shape, jnp.float32)
  return x1, x1 + MIXUP_GAMMA * jax.random.normal(k2, shape, jnp.float32)


def init_variables(net, key, x):
  """Zen-NAS variables for input ``x``: :func:`gaussian_init` params, fresh running statistics
  (mean 0, var 1). Only the structure of ``net.init`` is used (no forward pass)."""
  shapes = jax.eval_shape(net.init, key, x)
  stats = jax.tree_util.tree_map_with_path(
      lambda p, s: (jnp.ones if str(getattr(p[-1], "key", "")) == "var" else jnp.zeros)(
          s.shape, s.dtype), shapes["batch_stats"])
  return {"params": gaussian_init(shapes["params"], key), "batch_stats": stats}


@register("zen", needs_data=False, needs_variables=False, batch_size=BATCH_SIZE,
          config={"bn": "batch"}, requires=("features",))
def zen(net, variables, batch, key):
  """Zen-score log E|f(x) - f(x + 0.01 e)| + sum_BN log sqrt(mean running var) (Lin et al. 2021).

  Data-free: 64 gaussian inputs at ``batch.x``'s resolution, N(0, 1) weights, pre-pooling
  features ``f`` from two train-mode passes that also update the running variances read by the BN
  term (NASLib/ZenNAS ``compute_zen_score``). Features independent of the input: -1000.
  """
  del variables
  k_init, k_x = jax.random.split(key)
  x1, xm = zen_inputs(k_x, (BATCH_SIZE,) + tuple(batch.x.shape[1:]))
  v = init_variables(net, k_init, x1)
  delta, log_bn = zen_terms(net, v, x1, xm)
  ok = (delta > 0) & jnp.isfinite(delta) & jnp.isfinite(log_bn)
  return jnp.where(ok, jnp.log(jnp.where(ok, delta, 1.0)) + log_bn, DEGENERATE)
