"""NASI Eq. 4: the loss curve of linearised training predicted from the NTK's eigendecomposition.

For the linearised network ``f_lin(theta) = f(theta_0) + J (theta - theta_0)`` trained by gradient
descent with step ``eta`` on ``1/2 ||f_lin(X) - Y||^2`` (one-hot ``Y``), the residual obeys
``r_{t+1} = (I - eta Theta_0) r_t``, hence ``L_t = m^-1 ||r_t||^2 =
m^-1 sum_i (1 - eta lambda_i)^(2t) (u_i^T r_0)^2`` (Shu et al., ICLR 2022, Eq. 4, with
``r_0 = f_0(X) - Y``; NASI writes ``u_i^T Y``, i.e. ``f_0 = 0``). The check runs explicit gradient
descent on ``jax.linearize``'d network (its transpose gives ``J^T r``) and compares, in float64,
with BN in batch-statistics and in eval mode. ``eta = 0.9 / lambda_max`` (NASI needs
``eta < 1 / lambda_max``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxnas._compat import enable_x64

from jaxnas.ntk import empirical, spectrum
from jaxnas.spaces import nb201
from jaxnas.theory import common

BN_MODES = ("batch", "running")
ETA_FRACTION = 0.9


def _curves(apply_fn, params, x, y_onehot, coupled: bool, steps: int):
  theta = empirical.empirical_ntk(apply_fn, params, x, trace_outputs=False, coupled=coupled)
  lam = spectrum.eigenvalues(theta)
  eta = ETA_FRACTION / lam[-1]
  f0, jvp = jax.linearize(lambda p: apply_fn(p, x), params)
  vjp = jax.linear_transpose(jvp, params)
  m = x.shape[0]

  def step(delta, _):
    r = f0 + jvp(delta) - y_onehot
    (g,) = vjp(r)
    delta = jax.tree_util.tree_map(lambda d, gi: d - eta * gi, delta, g)
    return delta, jnp.sum(jnp.square(r)) / m

  zero = jax.tree_util.tree_map(jnp.zeros_like, params)
  _, gd = jax.lax.scan(step, zero, None, length=steps + 1)
  t = jnp.arange(steps + 1)
  predicted = spectrum.linearized_mse_curve(theta, f0 - y_onehot, eta, t)
  nasi_form = spectrum.linearized_mse_curve(theta, -y_onehot, eta, t)
  return {"gd": gd, "predicted": predicted, "nasi_form": nasi_form, "eta": eta,
          "lambda_max": lam[-1], "lambda_min": lam[0]}


def linearized_gd(cfg, archs) -> dict:
  """Max relative error between Eq. 4 and explicit GD on the linearised network, per step."""
  batch = common.real_batch(cfg.id_batch, cfg.resolution, cfg.seed + 7)
  runs, worst = [], 0.0
  with enable_x64():
    x = batch.x.astype(jnp.float64)
    y = jax.nn.one_hot(batch.y, 10, dtype=jnp.float64)
    for bn in BN_MODES:
      for a in archs[:cfg.id_archs]:
        net, v = common.discrete(cfg.net(bn=bn), a, batch, cfg.seed)
        v = jax.tree_util.tree_map(lambda t: t.astype(jnp.float64), v)
        apply_fn, chosen = empirical.network_apply(net, v)
        coupled = empirical.is_coupled(net)
        out = jax.jit(lambda p, xx, yy, fn=apply_fn, c=coupled: _curves(
            fn, p, xx, yy, c, cfg.lin_steps))(chosen, x, y)
        out = jax.tree_util.tree_map(np.asarray, out)
        err = float(np.max(np.abs(out["predicted"] - out["gd"]) / out["gd"]))
        worst = max(worst, err)
        runs.append({"bn": bn, "arch": nb201.decode(a), "max_rel_err": err,
                     "eta": float(out["eta"]), "lambda_max": float(out["lambda_max"]),
                     "lambda_min": float(out["lambda_min"]),
                     "loss_first": float(out["gd"][0]), "loss_last": float(out["gd"][-1]),
                     "nasi_form_rel_diff_last": float(
                         abs(out["nasi_form"][-1] - out["gd"][-1]) / out["gd"][-1]),
                     "gd": out["gd"].tolist(), "predicted": out["predicted"].tolist(),
                     "nasi_form": out["nasi_form"].tolist()})
  return {"linearized_gd_max_rel_err": worst, "steps": cfg.lin_steps, "runs": runs}
