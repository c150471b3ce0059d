"""Per-architecture NTK quantities across a sample of NB201: NASI's estimate vs the exact trace,
NASI's label/data agnosticism (Prop. 2), and the NTK quantities against 200-epoch accuracy.

For every architecture (same initialisation as :func:`jaxnas.engine.score`) on one real batch:

* NASI estimates ``||mean grad CE||^2`` (``jaxnas.proxies.nasi``) with true labels, random labels
  and N(0, 1) inputs, in train-mode BN (as registered) and in eval-mode BN;
* the exact full NTK ``(B, B, K, K)`` with batch-statistics BN (samples coupled) and in eval mode,
  (:mod:`jaxnas.ntk.empirical`); from each: trace, condition number, smallest eigenvalue and NASI's
  predicted loss (Eq. 4 in NASI's form ``r_0 = -Y``, at step ``cfg.nasi_step`` with one step size
  ``eta = 0.9 / max_A lambda_max(A)`` shared by all architectures);
* the exact eval-mode trace on the gaussian inputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxnas._compat import enable_x64

from jaxnas import benchmarks
from jaxnas.ntk import empirical, spectrum
from jaxnas.proxies import nasi as nasi_proxy
from jaxnas.spaces import Network, get_space, nb201
from jaxnas.theory import common

TRUTH = "cifar10_test200"
MODES = ("batch", "running")


def _kernels(module):
  """Jitted per-architecture quantities of one network configuration, each its own small
  compilation (one ``jit`` over the architecture as data: compiled once, reused for every
  architecture; one fused program of all of them compiles several times slower on a CPU)."""
  def bound(arch):
    return Network(get_space("nb201"), module, arch)

  def ev(arch):
    return bound(arch).replace(bn="running", reduction_bn=None)

  return {
      "sq_train": jax.jit(lambda a, v, x, y: nasi_proxy.sq_grad_norm(bound(a), v, x, y)),
      "sq_eval": jax.jit(lambda a, v, x, y: nasi_proxy.sq_grad_norm(ev(a), v, x, y)),
      "theta_batch": jax.jit(lambda a, v, x: empirical.network_ntk(
          bound(a), v, x, trace_outputs=False)),
      "theta_running": jax.jit(lambda a, v, x: empirical.network_ntk(
          ev(a), v, x, trace_outputs=False, vmap_axes=0)),
      "trace_running": jax.jit(lambda a, v, x: jnp.sum(empirical.network_ntk(
          ev(a), v, x, trace_outputs=True, diagonal=True, vmap_axes=0))),
  }


def _quantities(k, arch, v, batch, gauss_x, rand_y) -> dict:
  x, y = batch.x, batch.y
  return {
      "nasi": k["sq_train"](arch, v, x, y),
      "nasi_random_labels": k["sq_train"](arch, v, x, rand_y),
      "nasi_gaussian": k["sq_train"](arch, v, gauss_x, y),
      "nasi_eval": k["sq_eval"](arch, v, x, y),
      "nasi_eval_random_labels": k["sq_eval"](arch, v, x, rand_y),
      "nasi_eval_gaussian": k["sq_eval"](arch, v, gauss_x, y),
      "theta_batch": k["theta_batch"](arch, v, x),
      "theta_running": k["theta_running"](arch, v, x),
      "trace_running_gaussian": k["trace_running"](arch, v, gauss_x),
  }


def arch_quantities(cfg, archs) -> dict:
  """Computes the per-architecture quantities (host arrays), one architecture at a time."""
  batch = common.real_batch(cfg.batch, cfg.resolution, cfg.seed)
  gauss_x = common.gaussian_like(batch, cfg.seed + 1).x
  rand_y = common.random_labels(batch, cfg.seed + 2).y
  module = get_space("nb201").model(**cfg.net())
  kernels = _kernels(module)
  rows = []
  for a in np.asarray(archs):
    v = common.init_variables(module, a, batch, cfg.seed)  # as jaxnas.engine.score initialises
    rows.append(jax.tree_util.tree_map(
        np.asarray, _quantities(kernels, jnp.asarray(a, jnp.int32), v, batch, gauss_x, rand_y)))
  q = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
  y = np.asarray(jax.nn.one_hot(batch.y, 10), np.float64)
  with enable_x64():  # spectra of ill-conditioned kernels: float64 on the host
    for mode in MODES:
      thetas = [jnp.asarray(t, jnp.float64) for t in q.pop(f"theta_{mode}")]
      lam = np.stack([np.asarray(spectrum.eigenvalues(t)) for t in thetas])
      q[f"trace_{mode}"] = np.array([float(spectrum.trace(t)) for t in thetas])
      q[f"lambda_min_{mode}"] = lam[:, 0]
      q[f"lambda_max_{mode}"] = lam[:, -1]
      q[f"cond_{mode}"] = np.array([float(spectrum.condition_number(t)) for t in thetas])
      eta = 0.9 / float(np.max(lam[:, -1]))
      steps = jnp.asarray([cfg.nasi_step])
      q[f"nasi_loss_{mode}"] = np.array([float(spectrum.linearized_mse_curve(
          t, jnp.asarray(-y), eta, steps)[0]) for t in thetas])
      q[f"eta_{mode}"] = eta
  return q


def agnostic_and_accuracy(cfg, archs, q) -> dict:
  """Spearman correlations of the study (headline keys as in the theory JSON)."""
  acc = benchmarks.accuracy(nb201.to_index(archs), TRUTH)
  s = benchmarks.spearman
  res = {
      "nasi_vs_exact_trace_spearman": s(q["nasi"], q["trace_batch"]),
      "data_agnostic_spearman_gaussian": s(q["nasi"], q["nasi_gaussian"]),
      "label_agnostic_spearman_random_labels": s(q["nasi"], q["nasi_random_labels"]),
      "details": {
          "nasi_vs_exact_trace_spearman_by_mode": {
              "train_bn_estimate_vs_train_bn_trace": s(q["nasi"], q["trace_batch"]),
              "eval_bn_estimate_vs_eval_bn_trace": s(q["nasi_eval"], q["trace_running"]),
              "train_bn_estimate_vs_eval_bn_trace": s(q["nasi"], q["trace_running"]),
          },
          "data_agnostic_eval_bn_estimate": s(q["nasi_eval"], q["nasi_eval_gaussian"]),
          "label_agnostic_eval_bn_estimate": s(q["nasi_eval"], q["nasi_eval_random_labels"]),
          "data_agnostic_exact_eval_trace": s(q["trace_running"], q["trace_running_gaussian"]),
          "label_agnostic_pearson": benchmarks.pearson(q["nasi"], q["nasi_random_labels"]),
          "data_agnostic_pearson": benchmarks.pearson(q["nasi"], q["nasi_gaussian"]),
      },
  }
  acc_corr = {}
  for mode in MODES:
    acc_corr[f"bn_{mode}"] = {
        "trace": s(q[f"trace_{mode}"], acc),
        "condition_number": s(q[f"cond_{mode}"], acc),
        "lambda_min": s(q[f"lambda_min_{mode}"], acc),
        f"nasi_predicted_loss_t{cfg.nasi_step}": s(q[f"nasi_loss_{mode}"], acc),
    }
  acc_corr["nasi_estimate"] = s(q["nasi"], acc)
  res["ntk_vs_accuracy_spearman"] = acc_corr
  res["truth"] = TRUTH
  res["num_archs"] = int(len(archs))
  res["n_cond_sentinel"] = {m: int(np.sum(q[f"cond_{m}"] >= spectrum.COND_SENTINEL))
                            for m in MODES}
  res["accuracy"] = acc
  return res
