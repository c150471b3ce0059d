"""Parameter declarations of the DARTS networks and the blocks both build from them (cell
preprocessing, stem, head), with the input and configuration checks.

Parameter names follow :mod:`jaxnas.spaces.params`: within ``cell_<i>``, ``conv_pre{0,1}`` (or
``conv_pre0_{a,b}`` for FactorizedReduce) with ``bn_pre{0,1}``; per edge ``conv_sep{3,5}_{dw,pw}{1,2}``,
``bn_sep{3,5}_{1,2}``, ``conv_dil{3,5}_{dw,pw}``, ``bn_dil{3,5}``, ``bn_{max,avg}pool`` (``pool_bn``),
and on reduction cells ``conv_skip_{a,b}``, ``bn_skip`` (stacked over the 8 input edges only).
``conv_stem``, ``bn_stem``, ``classifier``; the evaluation network's auxiliary head lives under
``auxiliary/{conv_1,bn_1,conv_2,bn_2,classifier}``.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasInputError, unknown
from jaxnas.spaces import ops as L
from jaxnas.spaces.darts.operations import _bn, _gated, factorized_reduce, relu_conv_bn
from jaxnas.spaces.darts.topology import (AVG_POOL, CONV_IMPLS, DIL3, DIL5, MAX_POOL, OP_KEYS, SEP3,
                                          SEP5, SKIP)

def _declare_bn(mod: nn.Module, name: str, C: int, affine: bool, stack: tuple, bn_mode: str):
  if bn_mode == "none":
    return None, None
  bnv = L.BNVars(C, affine, stack=stack, name=name)
  scale, bias, state = bnv()
  return bnv, dict(scale=scale, bias=bias, state=state)


def _declare_conv(name, cin, cout, k, stack, init, groups=1, gate_batch=0):
  """Declares conv ``name``; returns ``(kernel, gate)``, with ``gate_batch=B`` a gate of ones
  ``stack + (B, cout)`` (``gates/<name>/gate``, see :mod:`.operations`), else None."""
  kernel, _, gate = L.ConvKernel(cin, cout, k, groups=groups, weight_init=init, stack=stack,
                                 gate_batch=gate_batch, name=name)()
  return kernel, gate


def _conv_into(p: dict, key: str, name, cin, cout, k, stack, init, groups=1, gate_batch=0):
  """Declares conv ``name`` as ``p[key]`` and its gate, if any, as ``p['gate_' + key]``."""
  p[key], gate = _declare_conv(name, cin, cout, k, stack, init, groups, gate_batch)
  if gate is not None:
    p["gate_" + key] = gate


def declare_op(mod: nn.Module, k: int, C: int, stride: int, affine: bool, pool_bn: bool,
               bn_mode: str, init: str, stack: tuple = (), gate_batch: int = 0):
  """Declares op ``k``'s parameters on ``mod``; returns ``(params, {bn_path: BNVars})`` where
  ``params`` is the op's subtree of an edge's parameter tree (None if it has none). With
  ``gate_batch=B`` every conv also gets a gate ``(B, C_out)`` (``params['gate_<conv>']``)."""
  bns, p = {}, {}

  def bn(name, key, affine_=affine):
    bnv, site = _declare_bn(mod, name, C, affine_, stack, bn_mode)
    if bnv is not None:
      bns[key] = bnv
    return site

  if k in (MAX_POOL, AVG_POOL):
    if not pool_bn:
      return None, {}
    key = OP_KEYS[k]
    p["bn"] = bn(f"bn_{key}", (key, "bn"), False)
  elif k == SKIP:
    if stride == 1:
      return None, {}
    _conv_into(p, "a", "conv_skip_a", C, C // 2, 1, stack, init, gate_batch=gate_batch)
    _conv_into(p, "b", "conv_skip_b", C, C - C // 2, 1, stack, init, gate_batch=gate_batch)
    p["bn"] = bn("bn_skip", ("skip", "bn"))
  elif k in (SEP3, SEP5):
    ks, key = (3 if k == SEP3 else 5), OP_KEYS[k]
    for t in (1, 2):
      _conv_into(p, f"dw{t}", f"conv_{key}_dw{t}", C, C, ks, stack, init, C, gate_batch)
      _conv_into(p, f"pw{t}", f"conv_{key}_pw{t}", C, C, 1, stack, init, gate_batch=gate_batch)
      p[f"bn{t}"] = bn(f"bn_{key}_{t}", (key, f"bn{t}"))
  elif k in (DIL3, DIL5):
    ks, key = (3 if k == DIL3 else 5), OP_KEYS[k]
    _conv_into(p, "dw", f"conv_{key}_dw", C, C, ks, stack, init, C, gate_batch)
    _conv_into(p, "pw", f"conv_{key}_pw", C, C, 1, stack, init, gate_batch=gate_batch)
    p["bn"] = bn(f"bn_{key}", (key, "bn"))
  else:
    return None, {}
  return p, bns


def _preprocess(mod: nn.Module, x, tag: str, C_in: int, C: int, fr: bool, affine: bool,
                bn_mode: str, init: str, relus=None, gate_batch: int = 0):
  """Cell input preprocessing: FactorizedReduce (``fr``) or ReLU-Conv1x1-BN, to ``C`` channels
  (``relus``: a list that collects the ReLU's input; ``gate_batch``: gates on the convs; see
  :mod:`.operations`)."""
  p = {}
  if fr:
    _conv_into(p, "a", f"conv_{tag}_a", C_in, C // 2, 1, (), init, gate_batch=gate_batch)
    _conv_into(p, "b", f"conv_{tag}_b", C_in, C - C // 2, 1, (), init, gate_batch=gate_batch)
  else:
    _conv_into(p, "conv", f"conv_{tag}", C_in, C, 1, (), init, gate_batch=gate_batch)
  bnv, p["bn"] = _declare_bn(mod, f"bn_{tag}", C, affine, (), bn_mode)
  y, st = (factorized_reduce if fr else relu_conv_bn)(x, p, bn_mode, relus)
  _write(bnv, st["bn"], bn_mode)
  return y


def _tracking(bnv) -> bool:
  return bnv is not None and bnv.tracking()


def _write(bnv, state, bn_mode):
  if bn_mode == "batch" and _tracking(bnv):
    bnv.write(state)


def _stem(mod: nn.Module, x, C_out: int, bn_mode: str, init: str, gates: bool = False):
  kern, gate = _declare_conv("conv_stem", x.shape[-1], C_out, 3, (), init,
                             gate_batch=x.shape[0] if gates else 0)
  h = _gated(L.conv2d(x, kern, padding=1), gate)
  bnv, site = _declare_bn(mod, "bn_stem", C_out, True, (), bn_mode)
  h, st = _bn(h, site, bn_mode)
  _write(bnv, st, bn_mode)
  return h


def _head(h, num_classes: int, init: str, gates: bool = False):
  return L.Dense(num_classes, weight_init=init, gates=gates, name="classifier")(
      L.global_avg_pool(h))


def _concat_nodes(nodes):
  """``(4, B, H, W, C)`` intermediate nodes -> ``(B, H, W, 4C)`` (node 2's channels first)."""
  n, b, h, w, c = nodes.shape
  return jnp.transpose(nodes, (1, 2, 3, 0, 4)).reshape(b, h, w, n * c)


def check_input(x):
  """Raises :class:`JaxnasInputError` unless ``x`` is a non-empty NHWC batch with H, W % 4 == 0."""
  if x.ndim != 4:
    raise JaxnasInputError(f"DARTS input must be NHWC (B, H, W, C), got shape {x.shape}")
  if x.shape[0] < 1:
    raise JaxnasInputError("DARTS input batch is empty (batch size 0)")
  if x.shape[1] % 4 or x.shape[2] % 4 or x.shape[1] < 4 or x.shape[2] < 4:
    raise JaxnasInputError(
        f"DARTS input height and width must be positive multiples of 4, got {x.shape[1:3]}")


def _check_config(C, L_, num_classes, bn, conv_impl, stem_multiplier=3):
  for name, v in (("C", C), ("L", L_), ("num_classes", num_classes),
                  ("stem_multiplier", stem_multiplier)):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
      raise JaxnasInputError(f"DARTS {name} must be a positive integer, got {v!r}")
  L.check_bn_mode(bn)
  if conv_impl not in CONV_IMPLS:
    raise unknown("depthwise conv implementation", conv_impl, CONV_IMPLS)


def _drop_states(params):
  """Parameter tree with every BN ``state`` set to None (not tracked, not read)."""
  out = {}
  for key, site in params.items():
    out[key] = {n: (dict(v, state=None) if (n.startswith("bn") and v is not None) else v)
                for n, v in site.items()}
  return out
