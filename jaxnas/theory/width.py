"""Convergence of the empirical NTK of finite NB201 cell networks to the analytic infinite-width NTK.

For each cell and width ``C``, the relative Frobenius error ``||Theta_C - Theta_inf||_F /
||Theta_inf||_F`` between the empirical NTK of the finite cell network (NTK parameterisation, no
BN; :mod:`jaxnas.ntk.infinite`) computed by :mod:`jaxnas.ntk.empirical` and the analytic
infinite-width NTK (:mod:`jaxnas.ntk.stax`),
averaged over initialisations. Theory (Jacot et al. 2018; Hanin & Nica 2019) predicts fluctuations
of order ``C^-1/2``, i.e. a log-log slope near -0.5.
"""

from __future__ import annotations

import jax
import numpy as np

from jaxnas.ntk import empirical, infinite
from jaxnas.spaces import nb201
from jaxnas.theory import common


def _empirical(arch, widths, seeds, x, n_cells):
  a = tuple(int(v) for v in nb201.encode(arch))

  def ntk(p, xx):
    return empirical.empirical_ntk(lambda pp, xb: infinite.finite_apply(pp, xb, a), p, xx,
                                   trace_outputs=True, coupled=False)

  fn = jax.jit(ntk)
  out = {}
  for c in widths:
    out[c] = [np.asarray(fn(infinite.finite_init(jax.random.key(s), a, C=c, N=n_cells), x))
              for s in range(seeds)]
  return out


def width_convergence(cfg) -> dict:
  """Per-cell errors by width and fitted log-log slopes; the headline is their mean."""
  x = common.real_batch(cfg.width_batch, cfg.width_resolution, cfg.seed + 11).x
  cells = []
  for cell in cfg.width_cells:
    arch = nb201.encode(cell)
    k_inf = np.asarray(infinite.analytic_kernels(arch, x, N=1).ntk)
    emp = _empirical(arch, cfg.widths, cfg.width_seeds, x, 1)
    errs = [float(np.mean([np.linalg.norm(t - k_inf) / np.linalg.norm(k_inf) for t in emp[c]]))
            for c in cfg.widths]
    slope, intercept = np.polyfit(np.log(cfg.widths), np.log(errs), 1)
    cells.append({"cell": nb201.decode(arch), "widths": list(cfg.widths), "rel_frobenius_err": errs,
                  "slope": float(slope), "intercept": float(intercept),
                  "analytic_ntk_diag_mean": float(np.mean(np.diag(k_inf)))})
  return {"width_convergence_slope": float(np.mean([c["slope"] for c in cells])),
          "cells": cells, "seeds": cfg.width_seeds, "batch": cfg.width_batch,
          "resolution": cfg.width_resolution}
