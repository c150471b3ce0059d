"""The DARTS operations on explicit parameter trees, and the supernet's mixed edge.

Operations (``OPS``, DARTS' ``PRIMITIVES`` order): ``none`` (zeros), ``max_pool_3x3``,
``avg_pool_3x3`` (``count_include_pad=False``), ``skip_connect`` (identity; FactorizedReduce on
stride-2 edges), ``sep_conv_{3x3,5x5}`` ([ReLU, depthwise kxk, pointwise 1x1, BN] twice, stride in
the first depthwise conv), ``dil_conv_{3x3,5x5}`` (ReLU, depthwise kxk dilation 2, pointwise, BN).
Each returns its output and the new running states of its own BNs. Every op with a ReLU starts
with it (sep_conv has a second one inside); given a list ``relus``, an op appends the input of each
ReLU it applies, in order (the unrolled supernet's ``relu_probe``, as NASLib hooks every
``nn.ReLU``). An op's parameter tree may carry a gate ``gate_<conv>`` ``(B, C_out)`` beside a conv
kernel ``<conv>`` (``DartsSupernet.gates``): that conv's output is multiplied by it per image and
channel, before BN (fisher's ``dL/dgate = sum_spatial a * dL/da``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasInputError
from jaxnas.spaces import ops as L
from jaxnas.spaces.darts.layers import avg_pool_3x3, depthwise_conv, max_pool_3x3, pointwise
from jaxnas.spaces.darts.topology import (AVG_POOL, DIL3, DIL5, MAX_POOL, NONE, NUM_OPS, OP_KEYS,
                                          SEP3, SEP5, SKIP)

def _relu(x, relus=None):
  """ReLU; ``relus`` (a list or None) collects its input."""
  if relus is not None:
    relus.append(x)
  return jax.nn.relu(x)


def _gated(y, gate):
  """``y`` times ``gate`` ``(B, C)`` per image and channel (None: ``y`` unchanged)."""
  if gate is None:
    return y
  return y * jax.lax.broadcast_in_dim(gate.astype(y.dtype), y.shape, (0, y.ndim - 1))


def _bn(h, bn, mode):
  """BN with a site dict ``{scale, bias, state}`` (None: BN removed)."""
  if bn is None:
    return h, None
  return L.batch_norm(h, bn["scale"], bn["bias"], bn["state"], mode)


def factorized_reduce(x, p, mode, relus=None):
  """ReLU; two stride-2 1x1 convs (the second on the input shifted by one pixel), concatenated;
  BN. ``p``: ``{a, b, bn}`` with kernels ``(1, 1, C_in, C_out // 2)``."""
  h = _relu(x, relus)
  y = jnp.concatenate([_gated(pointwise(h[:, ::2, ::2], p["a"]), p.get("gate_a")),
                       _gated(pointwise(h[:, 1::2, 1::2], p["b"]), p.get("gate_b"))], axis=-1)
  y, st = _bn(y, p["bn"], mode)
  return y, {"bn": st}


def relu_conv_bn(x, p, mode, relus=None):
  """ReLU -> Conv1x1 -> BN (cell input preprocessing). ``p``: ``{conv, bn}``."""
  y, st = _bn(_gated(pointwise(_relu(x, relus), p["conv"]), p.get("gate_conv")), p["bn"], mode)
  return y, {"bn": st}


def _dw_pw_bn(x, p, t, stride, padding, dilation, mode, impl, relus=None):
  """ReLU, depthwise conv ``p['dw' + t]``, pointwise conv ``p['pw' + t]``, BN ``p['bn' + t]``."""
  h = depthwise_conv(_relu(x, relus), p["dw" + t], stride, padding, dilation, impl)
  h = _gated(pointwise(_gated(h, p.get("gate_dw" + t)), p["pw" + t]), p.get("gate_pw" + t))
  return _bn(h, p["bn" + t], mode)


def sep_conv(x, p, k, stride, mode, impl, relus=None):
  """[ReLU, depthwise kxk, pointwise, BN] x 2, the stride in the first depthwise conv."""
  h, s1 = _dw_pw_bn(x, p, "1", stride, k // 2, 1, mode, impl, relus)
  h, s2 = _dw_pw_bn(h, p, "2", 1, k // 2, 1, mode, impl, relus)
  return h, {"bn1": s1, "bn2": s2}


def dil_conv(x, p, k, stride, mode, impl, relus=None):
  """ReLU, depthwise kxk with dilation 2 (padding k-1), pointwise, BN."""
  h, s = _dw_pw_bn(x, p, "", stride, k - 1, 2, mode, impl, relus)
  return h, {"bn": s}


def _states_of(p):
  """The BN running-state subtree of an edge's parameter tree ``{op_key: {bn_name: state}}``."""
  out = {}
  for key, site in p.items():
    out[key] = {n: (v["state"] if v is not None else None) for n, v in site.items()
                if n.startswith("bn")}
  return out


def apply_op(k: int, x, p, stride: int, mode: str, impl: str, relus=None):
  """Operation ``OPS[k]`` on ``x``; returns ``(y, {op_key: {bn_name: new_state}})`` for its own
  BNs only (``p`` is the edge's parameter tree, ``p[OP_KEYS[k]]`` this op's). ``relus``: a list
  to which the input of every ReLU of the op is appended (none for pools, identity, ``none``)."""
  if k == NONE:
    b, h, w, c = x.shape
    return jnp.zeros((b, -(-h // stride), -(-w // stride), c), x.dtype), {}
  if k == SKIP:
    if stride == 1:
      return x, {}
    y, st = factorized_reduce(x, p["skip"], mode, relus)
    return y, {"skip": st}
  if k in (MAX_POOL, AVG_POOL):
    y = (max_pool_3x3 if k == MAX_POOL else avg_pool_3x3)(x, stride)
    key = OP_KEYS[k]
    if key in p:
      y, st = _bn(y, p[key]["bn"], mode)
      return y, {key: {"bn": st}}
    return y, {}
  if k in (SEP3, SEP5):
    y, st = sep_conv(x, p[OP_KEYS[k]], 3 if k == SEP3 else 5, stride, mode, impl, relus)
  elif k in (DIL3, DIL5):
    y, st = dil_conv(x, p[OP_KEYS[k]], 3 if k == DIL3 else 5, stride, mode, impl, relus)
  else:
    raise JaxnasInputError(f"DARTS op index must be in 0..{NUM_OPS - 1}, got {k}")
  return y, {OP_KEYS[k]: st}


def mixed_edge(x, op, p, stride: int, mode: str, impl: str):
  """One supernet edge. ``op``: a Python int, a traced int scalar (``lax.switch``) or weights
  ``(8,)`` (``sum_k w_k op_k(x)``). Returns ``(y, states)`` with every BN state of the edge."""
  states0 = _states_of(p)

  def branch(k):
    def f(x):
      y, st = apply_op(k, x, p, stride, mode, impl)
      states = {key: dict(v) for key, v in states0.items()}
      for key, v in st.items():
        states[key].update(v)
      return y, states
    return f

  if isinstance(op, (int, np.integer)):
    return branch(int(op))(x)
  if jnp.ndim(op) == 0:
    return jax.lax.switch(op, [branch(k) for k in range(NUM_OPS)], x)
  y, states = None, {key: dict(v) for key, v in states0.items()}
  for k in range(NUM_OPS):
    yk, st = apply_op(k, x, p, stride, mode, impl)
    t = op[k].astype(x.dtype) * yk
    y = t if y is None else y + t
    for key, v in st.items():
      states[key].update(v)
  return y, states
