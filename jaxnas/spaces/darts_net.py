"""The DARTS CIFAR networks as Flax modules (Liu et al., ICLR 2019; methods-spec §1.2).

Cells have two input nodes (the outputs of the two previous cells, preprocessed by ReLU-Conv1x1-BN,
or by FactorizedReduce when the previous cell was a reduction), 4 intermediate nodes each fed by
every earlier node (14 edges) and output the concatenation of the 4 intermediate nodes (4C
channels). The macro network is: stem Conv3x3 to 3C + BN; ``L`` cells with reduction cells (stride 2
on the edges from the input nodes, C doubled) at layers ``L//3`` and ``2L//3``; global average pool
and a linear classifier (no final BN-ReLU).

Two modules share the operations and the parameter naming:

* :class:`DartsSupernet` (``model_search.Network`` of DARTS; search default C=16, L=8): every edge
  holds all 8 operations. The architecture is an *input*: mixture weights ``(2, 14, 8)`` (normal,
  reduce) with edge output ``sum_k w_k op_k(x)`` (FreeDARTS passes the raw alpha, DARTS its
  softmax), or a discrete architecture (op indices per edge, ``lax.switch``: under ``lax.map`` only
  the chosen op runs). The 14 edges of a cell share one stacked parameter tree ``(14, ...)`` and run
  in ``lax.scan`` (one scan over the 14 edges in a normal cell; in a reduction cell one over the 8
  stride-2 edges from the inputs and one over the 6 internal edges), so each cell compiles one or
  two edge bodies. Search defaults: cell BNs without affine parameters and an extra
  BN(affine=False) after pooling ops (``affine=False, pool_bn=True``).
* :class:`DartsEvalNet` (``model.NetworkCIFAR``; evaluation default C=36, L=20): the network of one
  genotype, holding only its operations (two per intermediate node), with the optional auxiliary
  head and drop-path. Its parameters are those of the supernet (``affine=True, pool_bn=False``)
  restricted to the genotype's edges: :func:`discrete_params` maps one onto the other, and the two
  compute the same function.

Operations (``OPS``, DARTS' ``PRIMITIVES`` order): ``none`` (zeros), ``max_pool_3x3``,
``avg_pool_3x3`` (``count_include_pad=False``), ``skip_connect`` (identity; FactorizedReduce on
stride-2 edges), ``sep_conv_{3x3,5x5}`` ([ReLU, depthwise kxk, pointwise 1x1, BN] twice, stride in
the first depthwise conv), ``dil_conv_{3x3,5x5}`` (ReLU, depthwise kxk dilation 2, pointwise, BN).

Parameter names follow :mod:`jaxnas.spaces.params`: within ``cell_<i>``, ``conv_pre{0,1}`` (or
``conv_pre0_{a,b}`` for FactorizedReduce) with ``bn_pre{0,1}``; per edge ``conv_sep{3,5}_{dw,pw}{1,2}``,
``bn_sep{3,5}_{1,2}``, ``conv_dil{3,5}_{dw,pw}``, ``bn_dil{3,5}``, ``bn_{max,avg}pool`` (``pool_bn``),
and on reduction cells ``conv_skip_{a,b}``, ``bn_skip`` (stacked over the 8 input edges only).
``conv_stem``, ``bn_stem``, ``classifier``; the evaluation network's auxiliary head lives under
``auxiliary/{conv_1,bn_1,conv_2,bn_2,classifier}``.

Depthwise convolutions: XLA:CPU runs grouped convolutions (and their gradients inside loops) very
slowly, so on CPU they are computed as ``k*k`` shifted slices times per-channel weights, with a
custom JVP whose kernel tangent is one contraction over stacked slices (fast to compile and run in
reverse mode). ``conv_impl='lax'`` uses ``lax.conv_general_dilated`` with ``feature_group_count``
(the default on GPU/TPU). Both compute the same function (tested).
"""

from __future__ import annotations

import functools
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasInputError, unknown
from jaxnas.spaces import ops as L

OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
       "dil_conv_3x3", "dil_conv_5x5")
NONE, MAX_POOL, AVG_POOL, SKIP, SEP3, SEP5, DIL3, DIL5 = range(8)
NUM_OPS = len(OPS)
NUM_NODES = 4
#: (to_node, from_node) of each edge, nodes 0, 1 the cell inputs and 2..5 the intermediate nodes,
#: in DARTS' alpha-row order: node 2 <- 0, 1; node 3 <- 0, 1, 2; node 4 <- 0..3; node 5 <- 0..4.
EDGES = tuple((i + 2, j) for i in range(NUM_NODES) for j in range(i + 2))
NUM_EDGES = len(EDGES)
#: first edge of each intermediate node
NODE_OFFSET = (0, 2, 5, 9)
#: edges whose source is a cell input (stride 2 in reduction cells), and the others
INPUT_EDGES = tuple(e for e, (_, f) in enumerate(EDGES) if f < 2)
INNER_EDGES = tuple(e for e, (_, f) in enumerate(EDGES) if f >= 2)
CONV_IMPLS = ("auto", "shifted", "lax")
#: parameter-holding sub-sites of every op (the op's key in an edge's parameter tree)
OP_KEYS = {MAX_POOL: "maxpool", AVG_POOL: "avgpool", SKIP: "skip", SEP3: "sep3", SEP5: "sep5",
           DIL3: "dil3", DIL5: "dil5"}


def reduction_layers(L_: int) -> tuple:
  """Indices of the reduction cells: ``L//3`` and ``2L//3`` (DARTS)."""
  return tuple(sorted({L_ // 3, 2 * L_ // 3}))


def cell_plan(C: int, L_: int, stem_multiplier: int = 3):
  """Per cell ``(C_pp, C_p, C_cell, reduction, reduction_prev)`` and the final channel count."""
  red = reduction_layers(L_)
  c_pp = c_p = stem_multiplier * C
  c_cur, red_prev, plan = C, False, []
  for i in range(L_):
    r = i in red
    if r:
      c_cur *= 2
    plan.append((c_pp, c_p, c_cur, r, red_prev))
    red_prev = r
    c_pp, c_p = c_p, NUM_NODES * c_cur
  return plan, c_p


# ------------------------------------------------------------------ pure layers


def _out_size(n, k, stride, padding, dilation):
  return (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def _shifted(x, k, stride, padding, dilation):
  """The ``k*k`` (strided) windows of the zero-padded input, each ``(B, Ho, Wo, C)``."""
  b, h, w, c = x.shape
  ho, wo = (_out_size(n, k, stride, padding, dilation) for n in (h, w))
  xp = jax.lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (padding, padding, 0),
                                                (padding, padding, 0), (0, 0, 0)))
  return [jax.lax.slice(xp, (0, i * dilation, j * dilation, 0),
                        (b, i * dilation + (ho - 1) * stride + 1,
                         j * dilation + (wo - 1) * stride + 1, c), (1, stride, stride, 1))
          for i in range(k) for j in range(k)]


def _depthwise_sum(x, kernel, stride, padding, dilation):
  """``sum_ij window_ij * kernel[i, j, 0]`` with lax primitives only (cheap to trace)."""
  k, c = kernel.shape[0], x.shape[-1]
  w = jax.lax.reshape(kernel.astype(x.dtype), (k * k, c))
  out = None
  for n, s in enumerate(_shifted(x, k, stride, padding, dilation)):
    wn = jax.lax.broadcast_in_dim(jax.lax.reshape(jax.lax.slice_in_dim(w, n, n + 1), (c,)),
                                  s.shape, (3,))
    t = jax.lax.mul(s, wn)
    out = t if out is None else jax.lax.add(out, t)
  return out


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def depthwise_shifted(x, kernel, stride: int = 1, padding: int = 0, dilation: int = 1):
  """Depthwise conv ``y[b,h,w,c] = sum_ij xpad[b, s*h + d*i, s*w + d*j, c] * kernel[i, j, 0, c]``.

  ``x`` NHWC, ``kernel`` ``(k, k, 1, C)`` (HWIO with ``groups=C``, as PyTorch's
  ``Conv2d(C, C, k, groups=C)``). The kernel tangent is written as one contraction over the
  stacked windows, whose transpose (the kernel gradient) is a single dot instead of ``k*k``
  reductions.
  """
  return _depthwise_sum(x, kernel, stride, padding, dilation)


@depthwise_shifted.defjvp
def _depthwise_shifted_jvp(stride, padding, dilation, primals, tangents):
  x, kernel = primals
  dx, dk = tangents
  k, c = kernel.shape[0], x.shape[-1]
  y = depthwise_shifted(x, kernel, stride, padding, dilation)
  windows = jax.lax.concatenate(
      [jax.lax.broadcast_in_dim(s, (1,) + s.shape, (1, 2, 3, 4))
       for s in _shifted(x, k, stride, padding, dilation)], 0)             # (k*k, B, Ho, Wo, C)
  dk = jax.lax.reshape(dk.astype(x.dtype), (k * k, c))
  # contract the window axis, batch over channels: (C, B, Ho, Wo) -> (B, Ho, Wo, C)
  t_kernel = jax.lax.dot_general(windows, dk, (((0,), (0,)), ((4,), (1,))))
  t_kernel = jax.lax.transpose(t_kernel, (1, 2, 3, 0))
  return y, jax.lax.add(_depthwise_sum(dx, kernel, stride, padding, dilation), t_kernel)


#: below this many input elements (B*H*W*C) ``conv_impl='auto'`` uses lax convs on CPU too: tiny
#: networks are compile-bound, and the lax form traces and compiles several times faster.
AUTO_SHIFTED_MIN_SIZE = 1 << 15


def depthwise_conv(x, kernel, stride: int = 1, padding: int = 0, dilation: int = 1,
                   impl: str = "auto"):
  """Depthwise convolution (``groups = C``), symmetric zero padding as PyTorch's ``padding=p``.

  ``impl``: ``'shifted'`` (:func:`depthwise_shifted`), ``'lax'`` (``conv_general_dilated`` with
  ``feature_group_count=C``) or ``'auto'``: shifted on CPU for inputs of at least
  :data:`AUTO_SHIFTED_MIN_SIZE` elements (XLA:CPU runs grouped convolutions, and their gradients
  inside loops, 10-20x slower), lax otherwise. Both compute the same function.
  """
  if impl == "auto":
    impl = "shifted" if (jax.default_backend() == "cpu"
                         and x.size >= AUTO_SHIFTED_MIN_SIZE) else "lax"
  if impl == "shifted":
    return depthwise_shifted(x, kernel.astype(x.dtype), stride, padding, dilation)
  if impl == "lax":
    return L.conv2d(x, kernel, stride, padding, dilation, groups=x.shape[-1])
  raise unknown("depthwise conv implementation", impl, CONV_IMPLS)


def pointwise(x, kernel):
  """1x1 convolution ``(1, 1, C_in, C_out)`` as a matrix product over channels."""
  w = jax.lax.reshape(kernel.astype(x.dtype), kernel.shape[2:])
  return jax.lax.dot_general(x, w, (((3,), (0,)), ((), ())))


def max_pool_3x3(x, stride: int = 1):
  """``nn.MaxPool2d(3, stride, padding=1)`` (padding never wins the max)."""
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, stride, stride, 1),
                               ((0, 0), (1, 1), (1, 1), (0, 0)))


def avg_pool_3x3(x, stride: int = 1):
  """``nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)``."""
  pads = ((0, 0), (1, 1), (1, 1), (0, 0))
  s = jax.lax.reduce_window(x, np.zeros((), x.dtype), jax.lax.add, (1, 3, 3, 1),
                            (1, stride, stride, 1), pads)
  ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
  n = jax.lax.reduce_window(ones, np.zeros((), x.dtype), jax.lax.add, (1, 3, 3, 1),
                            (1, stride, stride, 1), pads)
  return s / n


def _bn(h, bn, mode):
  """BN with a site dict ``{scale, bias, state}`` (None: BN removed)."""
  if bn is None:
    return h, None
  return L.batch_norm(h, bn["scale"], bn["bias"], bn["state"], mode)


def factorized_reduce(x, p, mode):
  """ReLU; two stride-2 1x1 convs (the second on the input shifted by one pixel), concatenated;
  BN. ``p``: ``{a, b, bn}`` with kernels ``(1, 1, C_in, C_out // 2)``."""
  h = jax.nn.relu(x)
  y = jnp.concatenate([pointwise(h[:, ::2, ::2], p["a"]), pointwise(h[:, 1::2, 1::2], p["b"])],
                      axis=-1)
  y, st = _bn(y, p["bn"], mode)
  return y, {"bn": st}


def relu_conv_bn(x, p, mode):
  """ReLU -> Conv1x1 -> BN (cell input preprocessing). ``p``: ``{conv, bn}``."""
  y, st = _bn(pointwise(jax.nn.relu(x), p["conv"]), p["bn"], mode)
  return y, {"bn": st}


def _dw_pw_bn(x, dw, pw, bn, stride, padding, dilation, mode, impl):
  h = depthwise_conv(jax.nn.relu(x), dw, stride, padding, dilation, impl)
  return _bn(pointwise(h, pw), bn, mode)


def sep_conv(x, p, k, stride, mode, impl):
  """[ReLU, depthwise kxk, pointwise, BN] x 2, the stride in the first depthwise conv."""
  h, s1 = _dw_pw_bn(x, p["dw1"], p["pw1"], p["bn1"], stride, k // 2, 1, mode, impl)
  h, s2 = _dw_pw_bn(h, p["dw2"], p["pw2"], p["bn2"], 1, k // 2, 1, mode, impl)
  return h, {"bn1": s1, "bn2": s2}


def dil_conv(x, p, k, stride, mode, impl):
  """ReLU, depthwise kxk with dilation 2 (padding k-1), pointwise, BN."""
  h, s = _dw_pw_bn(x, p["dw"], p["pw"], p["bn"], stride, k - 1, 2, mode, impl)
  return h, {"bn": s}


def _states_of(p):
  """The BN running-state subtree of an edge's parameter tree ``{op_key: {bn_name: state}}``."""
  out = {}
  for key, site in p.items():
    out[key] = {n: (v["state"] if v is not None else None) for n, v in site.items()
                if n.startswith("bn")}
  return out


def apply_op(k: int, x, p, stride: int, mode: str, impl: str):
  """Operation ``OPS[k]`` on ``x``; returns ``(y, {op_key: {bn_name: new_state}})`` for its own
  BNs only (``p`` is the edge's parameter tree, ``p[OP_KEYS[k]]`` this op's)."""
  if k == NONE:
    b, h, w, c = x.shape
    return jnp.zeros((b, -(-h // stride), -(-w // stride), c), x.dtype), {}
  if k == SKIP:
    if stride == 1:
      return x, {}
    y, st = factorized_reduce(x, p["skip"], mode)
    return y, {"skip": st}
  if k in (MAX_POOL, AVG_POOL):
    y = (max_pool_3x3 if k == MAX_POOL else avg_pool_3x3)(x, stride)
    key = OP_KEYS[k]
    if key in p:
      y, st = _bn(y, p[key]["bn"], mode)
      return y, {key: {"bn": st}}
    return y, {}
  if k in (SEP3, SEP5):
    y, st = sep_conv(x, p[OP_KEYS[k]], 3 if k == SEP3 else 5, stride, mode, impl)
  elif k in (DIL3, DIL5):
    y, st = dil_conv(x, p[OP_KEYS[k]], 3 if k == DIL3 else 5, stride, mode, impl)
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


# --------------------------------------------------------- parameter declarations


def _declare_bn(mod: nn.Module, name: str, C: int, affine: bool, stack: tuple, bn_mode: str):
  if bn_mode == "none":
    return None, None
  bnv = L.BNVars(C, affine, stack=stack, name=name)
  scale, bias, state = bnv()
  return bnv, dict(scale=scale, bias=bias, state=state)


def _declare_conv(name, cin, cout, k, stack, init, groups=1):
  return L.ConvKernel(cin, cout, k, groups=groups, weight_init=init, stack=stack, name=name)()[0]


def declare_op(mod: nn.Module, k: int, C: int, stride: int, affine: bool, pool_bn: bool,
               bn_mode: str, init: str, stack: tuple = ()):
  """Declares op ``k``'s parameters on ``mod``; returns ``(params, {bn_path: BNVars})`` where
  ``params`` is the op's subtree of an edge's parameter tree (None if it has none)."""
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
    p["a"] = _declare_conv("conv_skip_a", C, C // 2, 1, stack, init)
    p["b"] = _declare_conv("conv_skip_b", C, C - C // 2, 1, stack, init)
    p["bn"] = bn("bn_skip", ("skip", "bn"))
  elif k in (SEP3, SEP5):
    ks, key = (3 if k == SEP3 else 5), OP_KEYS[k]
    for t in (1, 2):
      p[f"dw{t}"] = _declare_conv(f"conv_{key}_dw{t}", C, C, ks, stack, init, groups=C)
      p[f"pw{t}"] = _declare_conv(f"conv_{key}_pw{t}", C, C, 1, stack, init)
      p[f"bn{t}"] = bn(f"bn_{key}_{t}", (key, f"bn{t}"))
  elif k in (DIL3, DIL5):
    ks, key = (3 if k == DIL3 else 5), OP_KEYS[k]
    p["dw"] = _declare_conv(f"conv_{key}_dw", C, C, ks, stack, init, groups=C)
    p["pw"] = _declare_conv(f"conv_{key}_pw", C, C, 1, stack, init)
    p["bn"] = bn(f"bn_{key}", (key, "bn"))
  else:
    return None, {}
  return p, bns


def _preprocess(mod: nn.Module, x, tag: str, C_in: int, C: int, fr: bool, affine: bool,
                bn_mode: str, init: str):
  """Cell input preprocessing: FactorizedReduce (``fr``) or ReLU-Conv1x1-BN, to ``C`` channels."""
  if fr:
    p = dict(a=_declare_conv(f"conv_{tag}_a", C_in, C // 2, 1, (), init),
             b=_declare_conv(f"conv_{tag}_b", C_in, C - C // 2, 1, (), init))
  else:
    p = dict(conv=_declare_conv(f"conv_{tag}", C_in, C, 1, (), init))
  bnv, p["bn"] = _declare_bn(mod, f"bn_{tag}", C, affine, (), bn_mode)
  y, st = (factorized_reduce if fr else relu_conv_bn)(x, p, bn_mode)
  _write(bnv, st["bn"], bn_mode)
  return y


def _tracking(bnv) -> bool:
  return bnv is not None and bnv.tracking()


def _write(bnv, state, bn_mode):
  if bn_mode == "batch" and _tracking(bnv):
    bnv.write(state)


def _stem(mod: nn.Module, x, C_out: int, bn_mode: str, init: str):
  kern, _, _ = L.ConvKernel(x.shape[-1], C_out, 3, weight_init=init, name="conv_stem")()
  h = L.conv2d(x, kern, padding=1)
  bnv, site = _declare_bn(mod, "bn_stem", C_out, True, (), bn_mode)
  h, st = _bn(h, site, bn_mode)
  _write(bnv, st, bn_mode)
  return h


def _head(h, num_classes: int, init: str):
  return L.Dense(num_classes, weight_init=init, name="classifier")(L.global_avg_pool(h))


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


# ------------------------------------------------------------------ architectures


def edge_ops(arch):
  """Discrete architecture ``(..., 2, 8, 2)`` (``[cell type][slot] = (input node, op)``) ->
  op index per edge ``(..., 2, 14)``, 0 (``none``) on edges the genotype does not keep.

  Slot ``s`` feeds intermediate node ``s // 2``; its edge is ``NODE_OFFSET[s // 2] + input``.
  Traceable (``arch`` may be a tracer).
  """
  arch = jnp.asarray(arch)
  edge = jnp.asarray(NODE_OFFSET, jnp.int32)[jnp.arange(8) // 2] + arch[..., 0]
  onehot = jax.nn.one_hot(edge, NUM_EDGES, dtype=jnp.int32)          # (..., 2, 8, 14)
  return jnp.sum(onehot * arch[..., 1:2], axis=-2).astype(jnp.int32)


def to_weights(arch, dtype=jnp.float32):
  """Discrete architecture ``(..., 2, 8, 2)`` -> mixture weights ``(..., 2, 14, 8)``: one-hot on
  the kept edges' ops, all-zero rows on the other edges (their output is exactly zero)."""
  arch = jnp.asarray(arch)
  edge = jnp.asarray(NODE_OFFSET, jnp.int32)[jnp.arange(8) // 2] + arch[..., 0]
  e = jax.nn.one_hot(edge, NUM_EDGES, dtype=dtype)                    # (..., 2, 8, 14)
  o = jax.nn.one_hot(arch[..., 1], NUM_OPS, dtype=dtype)              # (..., 2, 8, 8)
  return jnp.einsum("...se,...so->...eo", e, o)


def _arch_to_edges(arch):
  """Supernet ``arch`` input -> ``(2, 14)`` int ops or ``(2, 14, 8)`` weights."""
  arch = jnp.asarray(arch)
  if arch.shape == (2, NUM_EDGES, NUM_OPS):
    if not jnp.issubdtype(arch.dtype, jnp.floating):
      arch = arch.astype(jnp.float32)
    return arch
  if arch.shape == (2, 8, 2) and jnp.issubdtype(arch.dtype, jnp.integer):
    return edge_ops(arch)
  if arch.shape == (2, NUM_EDGES) and jnp.issubdtype(arch.dtype, jnp.integer):
    return arch.astype(jnp.int32)
  raise JaxnasInputError(
      f"DARTS supernet arch must be mixture weights (2, 14, 8), a discrete architecture (2, 8, 2) "
      f"int or per-edge op indices (2, 14) int; got shape {arch.shape} dtype {arch.dtype}")


# ------------------------------------------------------------------ supernet


class _SuperCell(nn.Module):
  """One supernet cell; ``ops`` ``(14,)`` int or ``(14, 8)`` weights."""
  C: int
  C_pp: int
  C_p: int
  reduction: bool
  reduction_prev: bool
  bn: str
  affine: bool
  pool_bn: bool
  weight_init: str
  conv_impl: str

  @nn.compact
  def __call__(self, s0, s1, ops):
    mode, C = self.bn, self.C
    s0 = _preprocess(self, s0, "pre0", self.C_pp, C, self.reduction_prev, self.affine, mode,
                     self.weight_init)
    s1 = _preprocess(self, s1, "pre1", self.C_p, C, False, self.affine, mode, self.weight_init)
    params, bnvs = {}, {}
    for k in range(NUM_OPS):
      stride = 2 if (self.reduction and k == SKIP) else 1
      stack = (len(INPUT_EDGES),) if (self.reduction and k == SKIP) else (NUM_EDGES,)
      p, b = declare_op(self, k, C, stride, self.affine, self.pool_bn, mode, self.weight_init,
                        stack)
      if p is not None:
        params[OP_KEYS[k]] = p
        bnvs.update(b)
    track = mode == "batch" and any(_tracking(b) for b in bnvs.values())
    if not (track or mode == "running"):
      params = _drop_states(params)
    impl = self.conv_impl

    def take(tree, idx):
      return jax.tree_util.tree_map(lambda a: a[np.asarray(idx)], tree)

    if not self.reduction:
      nodes = jnp.zeros((6,) + s1.shape, s1.dtype).at[0].set(s0).at[1].set(s1)
      frm = np.array([f for _, f in EDGES], np.int32)
      to = np.array([t for t, _ in EDGES], np.int32)

      def edge(nodes, xs):
        t, f, op, p = xs
        y, st = mixed_edge(nodes[f], op, p, 1, mode, impl)
        return nodes.at[t].add(y), st

      # rematerialise edges in reverse mode (every op of the edge would otherwise be stored)
      nodes, states = jax.lax.scan(_remat(edge), nodes, (to, frm, ops, params))
      out = _concat_nodes(nodes[2:])
    else:
      p_in = {key: (v if key == "skip" else take(v, INPUT_EDGES)) for key, v in params.items()}
      p_mid = {key: take(v, INNER_EDGES) for key, v in params.items() if key != "skip"}
      inputs = jnp.stack([s0, s1])
      b, h, w, c = s1.shape
      acc = jnp.zeros((NUM_NODES, b, h // 2, w // 2, c), s1.dtype)
      to_in = np.array([EDGES[e][0] - 2 for e in INPUT_EDGES], np.int32)
      frm_in = np.array([EDGES[e][1] for e in INPUT_EDGES], np.int32)

      def in_edge(acc, xs):
        t, f, op, p = xs
        y, st = mixed_edge(inputs[f], op, p, 2, mode, impl)
        return acc.at[t].add(y), st

      acc, st_in = jax.lax.scan(_remat(in_edge), acc,
                                (to_in, frm_in, ops[np.asarray(INPUT_EDGES)], p_in))
      to_mid = np.array([EDGES[e][0] - 2 for e in INNER_EDGES], np.int32)
      frm_mid = np.array([EDGES[e][1] - 2 for e in INNER_EDGES], np.int32)

      def mid_edge(acc, xs):
        t, f, op, p = xs
        y, st = mixed_edge(acc[f], op, p, 1, mode, impl)
        return acc.at[t].add(y), st

      acc, st_mid = jax.lax.scan(_remat(mid_edge), acc,
                                 (to_mid, frm_mid, ops[np.asarray(INNER_EDGES)], p_mid))
      out = _concat_nodes(acc)
      states = _merge_reduction_states(st_in, st_mid)
    if track:
      for (key, name), bnv in bnvs.items():
        bnv.write(states[key][name])
    return out


import os
def _remat(f):
  return jax.checkpoint(f) if os.environ.get("REMAT", "1") == "1" else f


def _drop_states(params):
  """Parameter tree with every BN ``state`` set to None (not tracked, not read)."""
  out = {}
  for key, site in params.items():
    out[key] = {n: (dict(v, state=None) if (n.startswith("bn") and v is not None) else v)
                for n, v in site.items()}
  return out


def _merge_reduction_states(st_in, st_mid):
  """Stacked BN states of the 8 input edges and 6 inner edges -> the 14-edge stacks (the skip
  site's states stay stacked over the 8 input edges)."""
  inv = np.argsort(np.array(INPUT_EDGES + INNER_EDGES))
  out = {}
  for key, site in st_in.items():
    if key == "skip":
      out[key] = site
      continue
    out[key] = jax.tree_util.tree_map(
        lambda a, b: jnp.concatenate([a, b])[inv], site, st_mid[key])
  return out


class DartsSupernet(nn.Module):
  """The DARTS search supernet; call as ``apply(variables, x, arch)``.

  Attributes:
    C: channels of the first cells (stem outputs ``stem_multiplier * C``).
    L: number of cells; reduction cells at ``L//3`` and ``2L//3``.
    num_classes: classifier outputs.
    bn: ``'batch'`` (PyTorch train mode; running statistics updated when ``batch_stats`` is
      mutable), ``'running'`` (stored statistics) or ``'none'`` (every BN removed).
    affine: cell BNs (preprocessing and operations) carry scale/bias. DARTS' search network: False
      (the stem BN is always affine).
    pool_bn: an extra BN(affine=False) after each pooling op (DARTS' search network: True).
    stem_multiplier: the stem outputs ``stem_multiplier * C`` channels (3).
    weight_init: ``'torch'`` (PyTorch default) or ``'kaiming_normal'``.
    conv_impl: depthwise convolution implementation, see :func:`depthwise_conv`.

  Inputs: ``x`` ``(B, H, W, 3)`` NHWC with H, W multiples of 4; ``arch``: mixture weights
  ``(2, 14, 8)`` float (rows: normal / reduce cell edges in :data:`EDGES` order, columns
  :data:`OPS`), a discrete architecture ``(2, 8, 2)`` int (see :mod:`jaxnas.spaces.darts`) or per-edge
  op indices ``(2, 14)`` int (0 = no edge). Output: logits ``(B, num_classes)``.

  With ``affine=True, pool_bn=False`` and a discrete architecture (or its one-hot
  :func:`to_weights`), the output equals :class:`DartsEvalNet`'s on :func:`discrete_params`.
  """
  C: int = 16
  L: int = 8
  num_classes: int = 10
  bn: str = "batch"
  affine: bool = False
  pool_bn: bool = True
  stem_multiplier: int = 3
  weight_init: str = "torch"
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, arch):
    _check_config(self.C, self.L, self.num_classes, self.bn, self.conv_impl, self.stem_multiplier)
    check_input(x)
    if arch is None:
      raise JaxnasInputError("DartsSupernet needs an architecture argument (weights or genotype)")
    ops = _arch_to_edges(arch)
    h = _stem(self, x, self.stem_multiplier * self.C, self.bn, self.weight_init)
    s0 = s1 = h
    plan, _ = cell_plan(self.C, self.L, self.stem_multiplier)
    for i, (c_pp, c_p, c, red, red_prev) in enumerate(plan):
      cell = _SuperCell(c, c_pp, c_p, red, red_prev, self.bn, self.affine, self.pool_bn,
                        self.weight_init, self.conv_impl, name=f"cell_{i}")
      s0, s1 = s1, cell(s0, s1, ops[1 if red else 0])
    return _head(s1, self.num_classes, self.weight_init)


# ------------------------------------------------------------------ evaluation network


def _drop_path(mod: nn.Module, h, drop_prob):
  """DARTS drop-path: zero a sample's op output with probability ``p``, scale the rest by
  ``1 / (1 - p)`` (one Bernoulli draw per sample)."""
  keep = 1.0 - jnp.asarray(drop_prob, h.dtype)
  mask = jax.random.bernoulli(mod.make_rng("dropout"), keep, (h.shape[0], 1, 1, 1))
  return h / keep * mask.astype(h.dtype)


class _Edge(nn.Module):
  """One kept edge of the evaluation network (parameters unstacked, named as the supernet's)."""
  op: int
  C: int
  stride: int
  affine: bool
  bn: str
  weight_init: str
  conv_impl: str

  @nn.compact
  def __call__(self, x):
    p, bnvs = declare_op(self, self.op, self.C, self.stride, self.affine, False, self.bn,
                         self.weight_init)
    params = {} if p is None else {OP_KEYS[self.op]: p}
    track = self.bn == "batch" and any(_tracking(b) for b in bnvs.values())
    if not (track or self.bn == "running"):
      params = _drop_states(params)
    y, st = apply_op(self.op, x, params, self.stride, self.bn, self.conv_impl)
    if track:
      for (key, name), bnv in bnvs.items():
        bnv.write(st[key][name])
    return y


class _EvalCell(nn.Module):
  genes: tuple          # 8 (input, op) pairs
  C: int
  C_pp: int
  C_p: int
  reduction: bool
  reduction_prev: bool
  bn: str
  weight_init: str
  conv_impl: str

  @nn.compact
  def __call__(self, s0, s1, drop_prob):
    mode, C = self.bn, self.C
    s0 = _preprocess(self, s0, "pre0", self.C_pp, C, self.reduction_prev, True, mode,
                     self.weight_init)
    s1 = _preprocess(self, s1, "pre1", self.C_p, C, False, True, mode, self.weight_init)
    states = [s0, s1]
    for n in range(NUM_NODES):
      s = None
      for slot in (2 * n, 2 * n + 1):
        j, op = self.genes[slot]
        stride = 2 if (self.reduction and j < 2) else 1
        h = _Edge(op, C, stride, True, mode, self.weight_init, self.conv_impl,
                  name=f"edge_{NODE_OFFSET[n] + j}")(states[j])
        identity = op == SKIP and stride == 1
        if drop_prob is not None and not identity:
          h = _drop_path(self, h, drop_prob)
        s = h if s is None else s + h
      states.append(s)
    return jnp.concatenate(states[2:], axis=-1)


class _AuxHead(nn.Module):
  """DARTS' CIFAR auxiliary head (on the 8x8 map after the second reduction): ReLU,
  AvgPool(5, stride 3, count_include_pad=False), Conv1x1 to 128, BN, ReLU, Conv2x2 to 768, BN,
  ReLU, Linear."""
  num_classes: int
  bn: str
  weight_init: str

  @nn.compact
  def __call__(self, x):
    if not (8 <= x.shape[1] <= 10 and 8 <= x.shape[2] <= 10):
      raise JaxnasInputError(
          f"the DARTS auxiliary head needs an 8x8 to 10x10 feature map after the second reduction "
          f"(32x32 to 40x40 inputs), got {x.shape[1:3]}")
    h = jax.nn.relu(x)
    h = jax.lax.reduce_window(h, np.zeros((), h.dtype), jax.lax.add, (1, 5, 5, 1), (1, 3, 3, 1),
                              "VALID") / 25.0
    for t, (cout, k) in enumerate(((128, 1), (768, 2)), start=1):
      kern = _declare_conv(f"conv_{t}", h.shape[-1], cout, k, (), self.weight_init)
      h = L.conv2d(h, kern)
      bnv, site = _declare_bn(self, f"bn_{t}", cout, True, (), self.bn)
      h, st = _bn(h, site, self.bn)
      _write(bnv, st, self.bn)
      h = jax.nn.relu(h)
    return L.Dense(self.num_classes, weight_init=self.weight_init,
                   name="classifier")(h.reshape(h.shape[0], -1))


class DartsEvalNet(nn.Module):
  """The DARTS evaluation network of one genotype (``NetworkCIFAR``); call ``apply(variables, x)``.

  Attributes:
    fixed_arch: the genotype as a discrete architecture, nested tuples ``(2, 8, 2)`` (see
      :func:`jaxnas.spaces.darts.encode`).
    C, L, num_classes, bn, stem_multiplier, weight_init, conv_impl: as :class:`DartsSupernet`
      (every BN is affine; pooling ops have no BN).
    auxiliary: adds the auxiliary head after cell ``2L//3``; its logits are sown as
      ``aux_logits`` into ``intermediates`` when that collection is mutable. Its parameters live
      under ``auxiliary/`` (DARTS reports parameter counts without them).

  Call: ``apply(variables, x, drop_prob=None)``; a ``drop_prob`` (float or traced scalar) applies
  DARTS' drop-path to every non-identity op output and needs a ``'dropout'`` rng.
  """
  fixed_arch: tuple
  C: int = 36
  L: int = 20
  num_classes: int = 10
  auxiliary: bool = False
  bn: str = "batch"
  stem_multiplier: int = 3
  weight_init: str = "torch"
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, arch=None, drop_prob=None):
    _check_config(self.C, self.L, self.num_classes, self.bn, self.conv_impl, self.stem_multiplier)
    check_input(x)
    if arch is not None:
      raise JaxnasInputError("DartsEvalNet holds its genotype in fixed_arch; call without arch")
    genes = np.asarray(self.fixed_arch, np.int64)
    if genes.shape != (2, 8, 2):
      raise JaxnasInputError(f"DartsEvalNet.fixed_arch must have shape (2, 8, 2), got "
                             f"{genes.shape}")
    h = _stem(self, x, self.stem_multiplier * self.C, self.bn, self.weight_init)
    s0 = s1 = h
    plan, _ = cell_plan(self.C, self.L, self.stem_multiplier)
    for i, (c_pp, c_p, c, red, red_prev) in enumerate(plan):
      g = tuple((int(a), int(b)) for a, b in genes[1 if red else 0])
      cell = _EvalCell(g, c, c_pp, c_p, red, red_prev, self.bn, self.weight_init, self.conv_impl,
                       name=f"cell_{i}")
      s0, s1 = s1, cell(s0, s1, drop_prob)
      if self.auxiliary and i == 2 * self.L // 3 and (
          self.is_initializing() or self.is_mutable_collection("intermediates")):
        self.sow("intermediates", "aux_logits",
                 _AuxHead(self.num_classes, self.bn, self.weight_init, name="auxiliary")(s1))
    return _head(s1, self.num_classes, self.weight_init)


# ------------------------------------------------------------- parameter layouts


def _names(path):
  return [str(getattr(k, "key", getattr(k, "name", k))) for k in path]


def _site_op(name: str) -> Optional[int]:
  """Op index owning a stacked edge module name (``conv_sep3_dw1`` -> SEP3), else None."""
  for k, key in OP_KEYS.items():
    if name in (f"bn_{key}", f"conv_{key}_a", f"conv_{key}_b") or name.startswith(
        (f"conv_{key}_", f"bn_{key}_")):
      return k
  return None


def _edge_axis_ops(ops_cell, op: int, skip_site: bool):
  """0/1 per stacked edge: the edge uses ``op`` (the skip site spans the 8 input edges)."""
  ops_cell = jnp.asarray(ops_cell)
  if skip_site:
    ops_cell = ops_cell[..., np.asarray(INPUT_EDGES)]
  return ops_cell == op


def active_mask(tree, arch):
  """Per-layer 0/1 masks over a supernet variable tree: 1 where the layer belongs to ``arch``.

  Stacked edge leaves ``(14, ...)`` get a mask ``(14,)`` (``(8,)`` for the reduction cells' skip
  sites), 1 on the edges whose kept op owns them; every other leaf (stem, preprocessing, head) gets
  the scalar 1. ``arch``: discrete ``(2, 8, 2)`` / ``(2, 14)`` int, or weights ``(2, 14, 8)``
  (active where the weight is non-zero). ``arch`` may be traced. The cell type of ``cell_<i>`` is
  read from the leaf shapes (reduction cells hold a skip site).
  """
  a = _arch_to_edges(arch)
  reductions = _reduction_cells(tree)

  def leaf(path, x):
    names = _names(path)
    cell = next((n for n in names if n.startswith("cell_")), None)
    op = None
    for n in names:
      op = _site_op(n) if op is None else op
    if cell is None or op is None:
      return jnp.float32(1.0)
    typ = 1 if cell in reductions else 0
    skip = op == SKIP
    if a.ndim == 3:
      w = a[typ, :, op]
      w = w[np.asarray(INPUT_EDGES)] if skip else w
      return (w != 0).astype(jnp.float32)
    return _edge_axis_ops(a[typ], op, skip).astype(jnp.float32)

  return jax.tree_util.tree_map_with_path(leaf, tree)


def _reduction_cells(tree) -> set:
  """Names of the reduction cells of a variable tree (those holding a ``conv_skip_a`` site, or
  any collection's tree below a ``cell_<i>`` key whose stacked skip site exists)."""
  out = set()

  def visit(t, cell=None):
    if not hasattr(t, "items"):
      return
    for k, v in t.items():
      k = str(k)
      if k.startswith("cell_"):
        visit(v, k)
      elif cell is not None and k in ("conv_skip_a", "bn_skip"):
        out.add(cell)
      elif hasattr(v, "items"):
        visit(v, cell)

  visit(tree)
  return out


def discrete_params(tree, arch, C: int = 16, L: int = 8, stem_multiplier: int = 3):
  """Maps a supernet variable tree (any collection) onto :class:`DartsEvalNet`'s for ``arch``.

  Supernet leaf ``cell_i/<site>/leaf[e]`` -> ``cell_i/edge_e/<site>/leaf`` for each edge ``e`` the
  genotype keeps with the op owning ``<site>``; the skip site of reduction cells is indexed by the
  position of ``e`` among the input edges. ``C, L`` give the cell types (reduction layers).
  """
  a = np.asarray(arch, np.int64)
  red = set(reduction_layers(L))
  out = {}
  for k, v in tree.items():
    if not str(k).startswith("cell_"):
      out[k] = v
      continue
    i = int(str(k).split("_")[1])
    genes = a[1 if i in red else 0]
    cell = {}
    for mod, leaves in v.items():
      op = _site_op(mod)
      if op is None:
        cell[mod] = leaves
        continue
      for slot in range(8):
        j, o = int(genes[slot, 0]), int(genes[slot, 1])
        if o != op:
          continue
        n = slot // 2
        e = NODE_OFFSET[n] + j
        if op == SKIP and (i not in red or j >= 2):
          continue  # identity: no parameters
        idx = INPUT_EDGES.index(e) if op == SKIP else e
        cell.setdefault(f"edge_{e}", {})[mod] = jax.tree_util.tree_map(lambda t: t[idx], leaves)
    out[k] = cell
  return out
