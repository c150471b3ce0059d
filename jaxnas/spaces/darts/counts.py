"""Closed-form parameter and FLOP (multiply-accumulate) counts of the DARTS networks of discrete
architectures, exact in numpy and traceable in jax."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasInputError
from jaxnas.spaces.darts.topology import DIL3, DIL5, NUM_NODES, NUM_OPS, SEP3, SEP5, SKIP, cell_plan

def _np_or_jnp(arch):
  if isinstance(arch, (np.ndarray, list, tuple)):
    return np, np.asarray(arch, np.int64)
  return jnp, jnp.asarray(arch)


def _op_params(C: int, stride: int, bnp: int) -> np.ndarray:
  """Parameters of each op (index by op) on an edge with ``C`` channels."""
  t = np.zeros(NUM_OPS, np.int64)
  for k, ks in ((SEP3, 3), (SEP5, 5)):
    t[k] = 2 * (ks * ks * C + C * C + bnp)
  for k, ks in ((DIL3, 3), (DIL5, 5)):
    t[k] = ks * ks * C + C * C + bnp
  if stride == 2:
    t[SKIP] = C * C + bnp
  return t


def _op_macs(C: int, stride: int, hw: int) -> np.ndarray:
  """Multiply-accumulates of each op producing an ``hw``-pixel output with ``C`` channels."""
  t = np.zeros(NUM_OPS, np.int64)
  for k, ks in ((SEP3, 3), (SEP5, 5)):
    t[k] = 2 * hw * (ks * ks * C + C * C)
  for k, ks in ((DIL3, 3), (DIL5, 5)):
    t[k] = hw * (ks * ks * C + C * C)
  if stride == 2:
    t[SKIP] = hw * C * C
  return t


def _slot_cost(a, xp, tables):
  """Sum over cell types and slots of ``tables[t][stride][op]`` (stride 2 on reduce input edges)."""
  total = 0
  for t in range(2):
    j, op = a[..., t, :, 0], a[..., t, :, 1]
    c1 = xp.asarray(tables[t][0])[op]
    c2 = xp.asarray(tables[t][1])[op]
    total = total + xp.sum(xp.where((j < 2) & (t == 1), c2, c1), axis=-1)
  return total


def _aux_dims(resolution: int):
  p = (resolution // 4 - 5) // 3 + 1
  return p, p - 1


def count_params(arch, C: int = 36, L: int = 20, num_classes: int = 10, auxiliary: bool = False,
                 bn: str = "batch", affine: bool = True, stem_multiplier: int = 3,
                 in_channels: int = 3, **_):
  """Parameters of the discrete network of ``arch`` (BN scale/bias counted, running statistics
  not, as DARTS' ``count_parameters_in_MB``).

  Defaults: the evaluation network (C=36, L=20, affine BNs) without the auxiliary head (DARTS
  reports sizes without it; ``auxiliary=True`` adds it). With the supernet's configuration
  (``affine=False``; ``pool_bn`` adds no parameters) it counts the supernet's parameters that the
  architecture uses. ``arch``: ``(..., 2, 8, 2)``; numpy in -> exact int64, jax in -> float32.
  """
  xp, a = _np_or_jnp(arch)
  bnp = lambda c: 2 * c if (bn != "none" and affine) else 0
  stem_c = stem_multiplier * C
  total = 9 * in_channels * stem_c + (2 * stem_c if bn != "none" else 0)
  plan, c_final = cell_plan(C, L, stem_multiplier)
  tables = [[np.zeros(NUM_OPS, np.int64), np.zeros(NUM_OPS, np.int64)] for _ in range(2)]
  for c_pp, c_p, c, red, _ in plan:
    total += (c_pp + c_p) * c + 2 * bnp(c)        # FactorizedReduce has as many as ReLUConvBN
    t = 1 if red else 0
    tables[t][0] += _op_params(c, 1, bnp(c))
    tables[t][1] += _op_params(c, 2, bnp(c))
  total += c_final * num_classes + num_classes
  if auxiliary:
    c_aux = plan[2 * L // 3][2] * NUM_NODES
    total += c_aux * 128 + 128 * 768 * 4 + 768 * num_classes + num_classes
    total += (2 * 128 + 2 * 768) if bn != "none" else 0
  ops = _slot_cost(a, xp, tables)
  if xp is np:
    return total + ops
  return jnp.float32(total) + ops.astype(jnp.float32)


def count_flops(arch, C: int = 36, L: int = 20, num_classes: int = 10, auxiliary: bool = False,
                resolution: int = 32, convention: str = "macs", stem_multiplier: int = 3,
                in_channels: int = 3, **_):
  """Multiply-accumulates per image of the discrete network's convolutions and linear layers (the
  "multi-adds" DARTS papers report; BN, ReLU and pooling are not counted).

  Stem ``R^2 * 27 * 3C``; each cell's preprocessing ``r^2 (C_pp + C_p) C`` at its input-node
  resolution ``r`` (FactorizedReduce and ReLU-Conv1x1 cost the same); each op at the cell's output
  resolution ``r_o``: sep_conv ``2 r_o^2 (k^2 C + C^2)``, dil_conv ``r_o^2 (k^2 C + C^2)``, skip on
  a stride-2 edge ``r_o^2 C^2``; classifier ``C_final * classes``; auxiliary head (32x32 inputs)
  ``4 C_aux 128 + 4 * 128 * 768 + 768 * classes`` when ``auxiliary``.
  """
  if convention != "macs":
    raise JaxnasInputError(f"unknown FLOP convention {convention!r} for DARTS; allowed: macs")
  xp, a = _np_or_jnp(arch)
  r = resolution
  total = r * r * 9 * in_channels * stem_multiplier * C
  plan, c_final = cell_plan(C, L, stem_multiplier)
  tables = [[np.zeros(NUM_OPS, np.int64), np.zeros(NUM_OPS, np.int64)] for _ in range(2)]
  for c_pp, c_p, c, red, _ in plan:
    total += r * r * (c_pp + c_p) * c
    r_out = r // 2 if red else r
    t = 1 if red else 0
    tables[t][0] += _op_macs(c, 1, r_out * r_out)
    tables[t][1] += _op_macs(c, 2, r_out * r_out)
    r = r_out
  total += c_final * num_classes
  if auxiliary:
    c_aux = plan[2 * L // 3][2] * NUM_NODES
    p, q = _aux_dims(resolution)
    total += p * p * c_aux * 128 + q * q * 4 * 128 * 768 + 768 * q * q * num_classes
  ops = _slot_cost(a, xp, tables)
  if xp is np:
    return total + ops
  return jnp.float32(total) + ops.astype(jnp.float32)
