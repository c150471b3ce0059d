"""Checks of identities that hold exactly (up to rounding) for any network.

They run on the discrete build of each architecture (``NB201Net(fixed_arch=...)``, the same
values as the shared build, see :func:`jaxnas.theory.common.discrete`), in both BN regimes:
batch statistics (samples coupled; per-sample quantities are rows of the batched Jacobian) and
eval mode (``bn='running'``, samples independent).

* the implementations of the empirical NTK (:mod:`jaxnas.ntk.empirical`: Jacobian contraction and
  NTK-vector products; neural-tangents' own are checked against them by ``experiments/nt_oracle.py``)
  and the library's own per-sample ``J J^T`` agree, with batch-statistics BN
  (samples coupled) and with eval-mode BN; chunked evaluation equals unchunked;
* NASI Eq. 9: ``tr Theta = sum_x ||J_x||_F^2``;
* NASI Eq. 10: ``||grad_theta L_x|| <= gamma ||J_x||_F`` with ``gamma = sqrt(2)`` for softmax
  cross-entropy (its gradient in the logits, ``p - e_y``, has norm below sqrt(2));
* NASI Eq. 11 per batch (Jensen): ``b ||mean_{x in X_j} g_x||^2 <= sum_{x in X_j} ||g_x||^2``, and
  chained with Eq. 10, ``b * nasi <= gamma^2 tr Theta(X_j)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas.ntk import empirical, per_sample
from jaxnas.spaces import Network, get_space, nb201
from jaxnas.theory import common

NT_IMPLEMENTATIONS = tuple(i for i in empirical.IMPLEMENTATIONS["jaxnas"] if i != "auto")
BN_MODES = ("batch", "running")  # samples coupled / not coupled
GAMMA = float(np.sqrt(2.0))


def nt_implementations(cfg, archs) -> dict:
  """Max relative difference of each NTK implementation (and chunking) to the per-sample ``J J^T``.

  On the discrete build of the first architecture (plain convolutions; compiling every
  implementation through the shared build's scan/switch takes minutes on a CPU), and with
  Jacobian contraction also on the shared build that the proxies use.
  """
  res_px = cfg.nt_resolution or cfg.resolution
  batch = common.real_batch(cfg.id_batch, res_px, cfg.seed)
  size = {"C": cfg.nt_C} if cfg.nt_C else {}
  space = get_space("nb201")
  res = {"by_mode": {}, "arch": nb201.decode(archs[0]), "batch": cfg.id_batch,
         "C": cfg.nt_C or cfg.C, "resolution": res_px}
  worst, worst_chunk = 0.0, 0.0
  for bn, build in [(bn, build) for bn in cfg.nt_modes for build in cfg.nt_builds]:
    if build == "discrete":
      net, v = common.discrete(cfg.net(bn=bn, **size), archs[0], batch, cfg.seed)
      impls = NT_IMPLEMENTATIONS
    else:
      module = space.model(**cfg.net(bn=bn, **size))
      net = Network(space, module, jnp.asarray(archs[0], jnp.int32))
      v = common.init_variables(module, archs[0], batch, cfg.seed)
      impls = NT_IMPLEMENTATIONS if cfg.nt_all_on_shared else NT_IMPLEMENTATIONS[:1]
    apply_fn, chosen = empirical.network_apply(net, v)
    coupled = empirical.is_coupled(net)
    own = jax.jit(lambda p: per_sample.jacobian_ntk(apply_fn, p, batch.x, coupled))(chosen)
    row = {}
    for impl in impls:
      k = jax.jit(lambda p, impl=impl: empirical.empirical_ntk(
          apply_fn, p, batch.x, trace_outputs=False, coupled=coupled, implementation=impl))(chosen)
      row[impl] = common.rel_diff(k, own)
      worst = max(worst, row[impl])
    chunked = jax.jit(lambda p: empirical.empirical_ntk(
        apply_fn, p, batch.x, trace_outputs=True, coupled=coupled,
        sample_chunk=cfg.id_batch // 2, output_chunk=5))(chosen)
    row["chunked_traced"] = common.rel_diff(chunked, jnp.einsum("ijkk->ij", own))
    worst_chunk = max(worst_chunk, row["chunked_traced"])
    res["by_mode"][f"{bn}/{build}"] = row
  res["nt_implementations_max_rel_diff"] = worst
  res["chunked_max_rel_diff"] = worst_chunk
  return res


def _per_sample_stats(net, v, batch):
  """Kernel trace diagonal, own ``||J_x||_F^2`` and per-sample loss-gradient norms (independent
  derivations: the loss gradients are taken of the loss, not contracted from ``J``)."""
  apply_fn, chosen = empirical.network_apply(net, v)
  coupled = empirical.is_coupled(net)
  nt_diag = empirical.empirical_ntk(apply_fn, chosen, batch.x, trace_outputs=True, diagonal=True,
                                    coupled=coupled)
  jac = per_sample.jacobian(apply_fn, chosen, batch.x, coupled)
  b = batch.x.shape[0]
  jnorm2 = sum(jnp.sum(jnp.square(j.reshape(b, -1)), 1) for j in jax.tree_util.tree_leaves(jac))

  def losses(p, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(apply_fn(p, x), y)

  if coupled:
    lg = jax.jacrev(lambda p: losses(p, batch.x, batch.y))(chosen)
  else:
    lg = jax.vmap(lambda xi, yi: jax.grad(lambda p: losses(p, xi[None], yi[None])[0])(chosen))(
        batch.x, batch.y)
  lnorm2 = per_sample.sq_norms(lg)
  mean_g = jax.tree_util.tree_map(lambda g: jnp.mean(g, 0), lg)
  batch_grad = jax.grad(lambda p: jnp.mean(losses(p, batch.x, batch.y)))(chosen)
  sq = lambda t: sum(jnp.sum(jnp.square(a)) for a in jax.tree_util.tree_leaves(t))
  return {"nt_diag": nt_diag, "jnorm2": jnorm2, "lnorm2": lnorm2, "mean_sq": sq(mean_g),
          "nasi": sq(batch_grad)}


def trace_and_jensen(cfg, archs) -> dict:
  """NASI Eq. 9, 10, 11 on ``cfg.id_archs`` architectures x ``cfg.jensen_batches`` batches."""
  out = {"trace_rel_err": [], "lipschitz_ratio": [], "jensen_ratio": [], "chain_ratio": [],
         "mean_is_batch_grad_rel_err": [], "points": []}
  batches = [common.real_batch(cfg.id_batch, cfg.resolution, cfg.seed + 1000 + j)
             for j in range(cfg.jensen_batches)]
  for bn in BN_MODES:
    for a in archs[:cfg.id_archs]:
      net, v = common.discrete(cfg.net(bn=bn), a, batches[0], cfg.seed)
      fn = jax.jit(lambda v, b, net=net: _per_sample_stats(net, v, b))
      for j, batch in enumerate(batches):
        s = jax.tree_util.tree_map(np.asarray, fn(v, batch))
        tr_nt, tr_own = float(np.sum(s["nt_diag"])), float(np.sum(s["jnorm2"]))
        out["trace_rel_err"].append(abs(tr_nt - tr_own) / tr_own)
        out["lipschitz_ratio"] += list(np.sqrt(s["lnorm2"]) / (GAMMA * np.sqrt(s["jnorm2"])))
        b = cfg.id_batch
        out["jensen_ratio"].append(float(b * s["mean_sq"] / np.sum(s["lnorm2"])))
        out["chain_ratio"].append(float(b * s["nasi"] / (GAMMA ** 2 * tr_own)))
        out["mean_is_batch_grad_rel_err"].append(
            abs(float(s["mean_sq"]) - float(s["nasi"])) / float(s["nasi"]))
        out["points"].append({"bn": bn, "arch": nb201.decode(a), "batch": j, "trace_nt": tr_nt,
                              "trace_own": tr_own, "nasi": float(s["nasi"])})
  tol = 1e-5
  return {
      "trace_identity_max_rel_err": float(np.max(out["trace_rel_err"])),
      "lipschitz_holds_fraction": float(np.mean(np.asarray(out["lipschitz_ratio"]) <= 1 + tol)),
      "lipschitz_max_ratio": float(np.max(out["lipschitz_ratio"])),
      "jensen_holds_fraction": float(np.mean(np.asarray(out["jensen_ratio"]) <= 1 + tol)),
      "jensen_ratio_median": float(np.median(out["jensen_ratio"])),
      "jensen_ratio_max": float(np.max(out["jensen_ratio"])),
      "nasi_bound_holds_fraction": float(np.mean(np.asarray(out["chain_ratio"]) <= 1 + tol)),
      "nasi_over_trace_median": float(np.median(out["chain_ratio"])),
      "mean_per_sample_grad_is_batch_grad_max_rel_err": float(
          np.max(out["mean_is_batch_grad_rel_err"])),
      "n_checks": len(out["jensen_ratio"]),
      "_raw": out,
  }
