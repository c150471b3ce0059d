"""The NAS-Bench-101 network as Flax modules (methods-spec §13.1, §13.4).

Skeleton (§13.1.1): stem conv3x3-BN-ReLU (C0 channels); ``num_stacks`` stacks of
``modules_per_stack`` cells of width C0 * 2^s, a 2x2 max pool (stride 2, 'same') before every stack
but the first; mean over H, W; dense head with bias. No BN/ReLU before the head. Layout NHWC/HWIO.

Ops (§13.1.2): ``convKxK-bn-relu`` (stride 1, 'same', no bias), ``maxpool3x3`` (stride 1, -inf
padding); projections are conv1x1-BN-ReLU from the cell input. BN normalises with batch statistics
(biased variance, eps 1e-5 inside the square root), as every proxy runs in train mode; no running
statistics are kept.

Cell (§13.1.3), for the pruned matrix M and widths vc = compute_vertex_channels(C_in, C, M): for
t = 1..V-2, x_t = op_t( sum_{0<s<t, M[s,t]} x_s[..., :vc[t]] + [M[0,t]] proj_t(x_0) ), each input
edge with its own projection; out = concat_{v: M[v,V-1]} x_v (ascending v) + [M[0,V-1]]
proj_out(x_0), or proj_out(x_0) alone when V = 2.

Initialisation (§13.1.4, archai / NASBench-PyTorch): conv kernels N(0, 2 / (k^2 C_out)) (He
fan-out), BN scale 1 and bias 0, dense weight N(0, 0.01^2) and bias 0.

Two builds:

* :class:`NB101Net` (discrete): one spec as a static attribute; only its layers' parameters, under
  ``stem``, ``cell_<stack>_<module>/{proj_<slot>, vertex_<slot>}/{kernel,scale,bias}`` and
  ``head/{kernel,bias}``, where ``slot`` is the vertex's padded slot (:func:`spec.padded_slots`;
  ``proj_6`` is proj_out).
* :class:`NB101MaskedNet` (§13.4): one compiled function for every spec; the
  :class:`~.spec.Encoding` is a (traced) input. Every cell stores 6 projections and per interior
  slot a conv1x1 and a conv3x3 at full width, stacked on a leading axis; activations stay at the
  stack width with channel masks. Its ``init`` draws *unit-normal* cell kernels; :func:`arch_params`
  scales them by the real He fan-out sigma of the spec and zeroes every entry that does not exist
  in the spec (then weight sums equal the discrete network's); :func:`discrete_params` slices such
  a tree into the :class:`NB101Net` layout.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.spaces import ops as L
from jaxnas.spaces.nb101.spec import (CONV1X1, CONV3X3, KERNEL, MAX_VERTICES, MAXPOOL, Spec,
                                      compute_vertex_channels, padded_slots, prune)

CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
#: Tensors a ``tap`` sees (``NB101Model.tap``, unrolled build): the stem's BN and ReLU outputs,
#: each downsampling max pool's output, per conv-BN-ReLU of a cell its BN and ReLU outputs
#: (projections ``proj_bn``/``proj``, vertex convs ``conv_bn``/``conv``), each max-pool vertex's
#: output and each cell's output.
TAP_SITES = ("stem_bn", "stem", "downsample", "proj_bn", "proj", "conv_bn", "conv", "pool",
             "cell")
DENSE_INIT = nn.initializers.normal(0.01)
_N = MAX_VERTICES


def conv_bn(x, kernel, scale, bias, bn: str = "batch", gate=None):
  """Conv (stride 1, 'same', no bias) -> (gate) -> BN with batch statistics (``bn='none'``:
  identity, as zero-cost synflow's BN-free copy): the input of the ReLU of :func:`conv_bn_relu`.
  ``gate`` ``(B, C_out)``, when given, multiplies the conv output per image and channel."""
  y = L.conv2d(x, kernel, padding=kernel.shape[0] // 2)
  if gate is not None:
    y = y * gate[:, None, None, :].astype(y.dtype)
  return L.batch_norm(y, scale, bias, None, bn)[0]


def conv_bn_relu(x, kernel, scale, bias, bn: str = "batch", gate=None):
  """:func:`conv_bn` -> ReLU."""
  return jax.nn.relu(conv_bn(x, kernel, scale, bias, bn, gate))


def max_pool(x, k: int, stride: int):
  """k x k max pool, TF 'same' padding (implicit -inf), as nasbench's pools."""
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, k, k, 1), (1, stride, stride, 1),
                               "SAME")


def stack_widths(stem_channels: int, num_stacks: int) -> tuple:
  """Cell width of every stack: C0 * 2^s."""
  return tuple(stem_channels * 2 ** s for s in range(num_stacks))


class ConvBNReLU(nn.Module):
  """Declares and applies one conv-BN-ReLU (``kernel`` HWIO, ``scale``, ``bias``)."""
  features: int
  kernel_size: int

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param("kernel", CONV_INIT, (k, k, x.shape[-1], self.features))
    scale = self.param("scale", nn.initializers.ones, (self.features,))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return conv_bn_relu(x, kernel, scale, bias)


class Head(nn.Module):
  """Dense layer, weight N(0, 0.01^2), bias 0."""
  num_classes: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.num_classes, kernel_init=DENSE_INIT, bias_init=nn.initializers.zeros,
                    name="dense")(x)


class Cell(nn.Module):
  """One NB101 cell of a pruned spec (§13.1.3), output width ``features``."""
  spec: Spec
  features: int

  @nn.compact
  def __call__(self, x):
    m, v, ops = self.spec.array(), self.spec.num_vertices, self.spec.ops
    vc = compute_vertex_channels(x.shape[-1], self.features, m)
    slot = padded_slots(v)
    outs = [x]
    for t in range(1, v - 1):
      fan_in = [outs[s][..., :vc[t]] for s in range(1, t) if m[s, t]]
      if m[0, t]:
        fan_in.append(ConvBNReLU(vc[t], 1, name=f"proj_{slot[t]}")(x))
      h = sum(fan_in[1:], fan_in[0])
      if ops[t] in KERNEL:
        h = ConvBNReLU(vc[t], KERNEL[ops[t]], name=f"vertex_{slot[t]}")(h)
      else:
        h = max_pool(h, 3, 1)
      outs.append(h)
    cat = [outs[u] for u in range(1, v - 1) if m[u, v - 1]]
    out = jnp.concatenate(cat, axis=-1) if cat else None
    if m[0, v - 1]:
      p = ConvBNReLU(self.features, 1, name=f"proj_{_N - 1}")(x)
      out = p if out is None else out + p
    return out


class NB101Net(nn.Module):
  """The network of one spec (pruned on use); ``__call__(x)`` maps NHWC images to logits."""
  spec: Spec
  stem_channels: int = 128
  num_stacks: int = 3
  modules_per_stack: int = 3
  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    p = prune(self.spec)
    x = ConvBNReLU(self.stem_channels, 3, name="stem")(x)
    for s, c in enumerate(stack_widths(self.stem_channels, self.num_stacks)):
      if s:
        x = max_pool(x, 2, 2)
      for j in range(self.modules_per_stack):
        x = Cell(p, c, name=f"cell_{s}_{j}")(x)
    return Head(self.num_classes, name="head")(jnp.mean(x, axis=(1, 2)))


# ------------------------------------------------------------------ masked build (§13.4)


class MaskedCellVars(nn.Module):
  """Declares a masked cell's parameters: ``proj`` (6 edges 0 -> 1..6, C_in -> C), ``conv1x1`` and
  ``conv3x3`` (5 interior slots, C -> C), each ``{kernel (stacked HWIO), scale, bias}``; kernels
  unit normal (see :func:`arch_params`)."""
  c_in: int
  features: int

  @nn.compact
  def __call__(self):
    c, out = self.features, {}
    for name, n, k, ci in (("proj", _N - 1, 1, self.c_in), ("conv1x1", _N - 2, 1, c),
                           ("conv3x3", _N - 2, 3, c)):
      out[name] = (self.param(f"{name}_kernel", nn.initializers.normal(1.0), (n, k, k, ci, c)),
                   self.param(f"{name}_scale", nn.initializers.ones, (n, c)),
                   self.param(f"{name}_bias", nn.initializers.zeros, (n, c)))
    return out


def _conv_bn_relu_nested(x, kernel, scale, bias, bn: str = "batch"):
  """:func:`conv_bn_relu` with :func:`ops.conv2d_nested` (fast backward inside ``lax.scan``)."""
  y = L.conv2d_nested(x, kernel, 1, kernel.shape[0] // 2)
  y, _ = L.batch_norm(y, scale, bias, None, bn)
  return jax.nn.relu(y)


def masked_cell(x, w, matrix, ops, vc, offsets, features: int, bn: str = "batch"):
  """The cell of §13.4 at full width ``features``; exact for the encoded spec.

  Vertex t gets sum_s A[s,t] (x_s * m_t) + A[0,t] proj_t(x_0), m_t = [c < vc[t]]; the op is picked
  with ``jnp.where`` (unpicked branches get zero inputs; no 0 * inf) and masked after the ReLU; the
  output is sum_v A[v,6] roll(x_v, off[v]) + A[0,6] proj_out(x_0). ``lax.scan`` runs the 5 interior
  slots with one compiled body, carrying their outputs (zeros until computed).
  """
  a, ops = jnp.asarray(matrix) > 0, jnp.asarray(ops)
  mask = jnp.arange(features)[None, :] < jnp.asarray(vc)[:, None]  # (7, C)
  zero = jnp.zeros((), x.dtype)

  def vertex(buf, xs):
    t, proj, conv1, conv3 = xs
    h = jnp.where(a[0, t], _conv_bn_relu_nested(x, *proj, bn), zero)
    h = h + jnp.sum(jnp.where(a[1:_N - 1, t][:, None, None, None, None], buf, zero), axis=0)
    h = jnp.where(mask[t], h, zero)
    is1, is3, isp = ops[t] == CONV1X1, ops[t] == CONV3X3, ops[t] == MAXPOOL
    y1 = _conv_bn_relu_nested(jnp.where(is1, h, zero), *conv1, bn)
    y3 = _conv_bn_relu_nested(jnp.where(is3, h, zero), *conv3, bn)
    yp = max_pool(jnp.where(isp, h, zero), 3, 1)
    y = jnp.where(mask[t], jnp.where(is1, y1, jnp.where(is3, y3, jnp.where(isp, yp, zero))), zero)
    return jax.lax.dynamic_update_index_in_dim(buf, y, t - 1, 0), None

  buf = jnp.zeros((_N - 2,) + x.shape[:-1] + (features,), x.dtype)
  proj5 = tuple(q[:_N - 2] for q in w["proj"])  # proj_out (slot 6) is applied after the scan
  xs = (jnp.arange(1, _N - 1), proj5, w["conv1x1"], w["conv3x3"])
  buf, _ = jax.lax.scan(vertex, buf, xs)
  out = jnp.where(a[0, _N - 1], conv_bn_relu(x, *(p[_N - 2] for p in w["proj"]), bn), zero)
  for u in range(1, _N - 1):
    out = out + jnp.where(a[u, _N - 1], jnp.roll(buf[u - 1], offsets[u], axis=-1), zero)
  return out


_cbr_block = jax.jit(conv_bn_relu, static_argnames="bn")
_cb_block = jax.jit(conv_bn, static_argnames="bn")
_pool_block = jax.jit(lambda x: max_pool(x, 3, 1))


def cell_layers(matrix, ops, vc, c_in: int, features: int) -> list:
  """The conv-BN-ReLU layers of a *concrete* spec's cell (numpy ``matrix``, ``ops``, ``vc``), in
  the order :func:`unrolled_cell` runs them: ``(layer, op, index, kernel_size, c_in, c_out)`` with
  ``layer`` named as in :class:`Cell` (``proj_<slot>`` / ``vertex_<slot>``, padded slots,
  ``proj_6`` the output projection), ``op`` the stacked variable it is a slice of (``'proj'``,
  ``'conv1x1'``, ``'conv3x3'``) at ``index`` = slot - 1, and its real input and output widths."""
  a, ops, vc = np.asarray(matrix) > 0, np.asarray(ops), np.asarray(vc)
  out = []
  for t in range(1, _N - 1):
    if ops[t] < 0:
      continue
    c = int(vc[t])
    if a[0, t]:
      out.append((f"proj_{t}", "proj", t - 1, 1, c_in, c))
    if ops[t] != MAXPOOL:
      op = "conv1x1" if ops[t] == CONV1X1 else "conv3x3"
      out.append((f"vertex_{t}", op, t - 1, 1 if op == "conv1x1" else 3, c, c))
  if a[0, _N - 1]:
    out.append((f"proj_{_N - 1}", "proj", _N - 2, 1, c_in, features))
  return out


def real_layers(w, matrix, ops, vc, features: int) -> dict:
  """``{layer: (kernel, scale, bias)}`` of a concrete spec's cell at the real widths
  (:func:`cell_layers`), sliced from the stacked full-width variables ``w`` (``{op: (kernel,
  scale, bias)}``, as :class:`MaskedCellVars` declares them)."""
  c_in = w["proj"][0].shape[-2]
  out = {}
  for layer, op, i, _, ci, co in cell_layers(matrix, ops, vc, c_in, features):
    k, sc, b = (q[i] for q in w[op])
    out[layer] = (k[:, :, :ci, :co], sc[:co], b[:co])
  return out


def unrolled_cell(x, layers, matrix, ops, vc, features: int, bn: str = "batch", on_relu=None,
                  gate=None, on_tap=None):
  """:func:`masked_cell` for a *concrete* spec (numpy ``matrix``, ``ops``, ``vc``): Python loops
  over its live vertices, each layer at its real width (``layers``: ``{layer: (kernel, scale,
  bias)}`` as :func:`real_layers` slices them from the full-width variables, or held at that size)
  and each conv-BN-ReLU / pool a compiled block shared by every architecture, so only the discrete
  network's arithmetic runs (the masked build computes every op at full width). Values equal
  :func:`masked_cell`'s; entries outside the slices get zero gradients there too.
  ``on_relu``, when given, is called with the input of every ReLU (each conv-BN-ReLU's BN
  output, at the layer's real width). ``gate``, when given, is called as ``gate(layer, kernel)``
  for every conv, ``layer`` named as in :class:`Cell` (``proj_<slot>``, ``vertex_<slot>``; slots
  are the padded ones, ``proj_6`` the output projection) and ``kernel`` the real layer's (sliced)
  kernel; it returns a ``(B, C_out)`` gate multiplying that conv's output (before BN).
  ``on_tap``, when given, is called as ``on_tap(site, tensor, slot)`` on the cell's tensors of
  :data:`TAP_SITES`: per conv-BN-ReLU its BN output (``'proj_bn'``, ``'conv_bn'``) then its ReLU
  output (``'proj'``, ``'conv'``), per max-pool vertex its output (``'pool'``); ``slot`` is the
  padded slot of the vertex (the projection's destination, 6 for proj_out)."""
  a, ops, vc = np.asarray(matrix) > 0, np.asarray(ops), np.asarray(vc)

  def _cbr(h, layer):
    k, sc, b = layers[layer]
    g = None if gate is None else gate(layer, k)
    if on_relu is None and on_tap is None:
      return _cbr_block(h, k, sc, b, bn=bn, gate=g)
    y = _cb_block(h, k, sc, b, bn=bn, gate=g)
    if on_relu is not None:
      on_relu(y)
    r = jax.nn.relu(y)
    if on_tap is not None:
      kind, slot = layer.split("_")
      site = "proj" if kind == "proj" else "conv"
      on_tap(site + "_bn", y, int(slot))
      on_tap(site, r, int(slot))
    return r

  outs = {}
  for t in range(1, _N - 1):
    if ops[t] < 0:
      continue
    c = int(vc[t])
    fan_in = [outs[s][..., :c] for s in range(1, t) if a[s, t]]
    if a[0, t]:
      fan_in.append(_cbr(x, f"proj_{t}"))
    h = sum(fan_in[1:], fan_in[0])
    if ops[t] == MAXPOOL:
      h = _pool_block(h)
      if on_tap is not None:
        on_tap("pool", h, t)
    else:
      h = _cbr(h, f"vertex_{t}")
    outs[t] = h
  cat = [outs[u] for u in range(1, _N - 1) if a[u, _N - 1]]
  out = jnp.concatenate(cat, axis=-1) if cat else None
  if a[0, _N - 1]:
    p = _cbr(x, f"proj_{_N - 1}")
    out = p if out is None else out + p
  return out


class NB101MaskedNet(nn.Module):
  """One compiled network for every spec: ``__call__(x, enc)`` with ``enc`` an
  :class:`~.spec.Encoding` (arrays, may be traced) encoded with ``stack_widths(stem_channels,
  num_stacks)``. Give it :func:`arch_params` of its parameters."""
  stem_channels: int = 128
  num_stacks: int = 3
  modules_per_stack: int = 3
  num_classes: int = 10

  @nn.compact
  def __call__(self, x, enc):
    x = ConvBNReLU(self.stem_channels, 3, name="stem")(x)
    c_prev = self.stem_channels
    for s, c in enumerate(stack_widths(self.stem_channels, self.num_stacks)):
      if s:
        x = max_pool(x, 2, 2)
      for j in range(self.modules_per_stack):
        w = MaskedCellVars(c_prev if j == 0 else c, c, name=f"cell_{s}_{j}")()
        x = masked_cell(x, w, enc.matrix, enc.ops, enc.vc[s], enc.offsets[s], c)
      c_prev = c
    return Head(self.num_classes, name="head")(jnp.mean(x, axis=(1, 2)))


def cell_masks(enc, s: int, c_in: int, features: int):
  """Per-architecture (sigma, entry mask) factors of stack ``s``'s cell parameters.

  Returns ``{name: (sigma (n,), out_mask (n, C), in_mask (n, C_in or C))}``: a kernel entry
  [i, ..., a, b] exists iff in_mask[i, a] and out_mask[i, b]; BN entries iff out_mask. sigma is the
  He fan-out std of the real layer: sqrt(2 / vc[t]) for projections into t (vc[6] = C),
  sqrt(2 / (k^2 vc[t])) for vertex convs.
  """
  a = jnp.asarray(enc.matrix) > 0
  ops, vc = jnp.asarray(enc.ops), jnp.asarray(enc.vc)[s]
  vc = vc.at[_N - 1].set(features)
  ch = jnp.arange(features)
  t = np.arange(1, _N)
  vmask = ch[None, :] < vc[t, None]  # (6, C)
  vcf = jnp.maximum(vc[t], 1).astype(jnp.float32)
  proj_on = a[0, t]
  out = {"proj": (jnp.sqrt(2.0 / vcf), vmask & proj_on[:, None],
                  jnp.broadcast_to(proj_on[:, None], (_N - 1, c_in)))}
  for name, code, k in (("conv1x1", CONV1X1, 1), ("conv3x3", CONV3X3, 3)):
    on = (ops[t[:-1]] == code)[:, None] & vmask[:-1]
    out[name] = (jnp.sqrt(2.0 / (k * k * vcf[:-1])), on, on)
  return out


def cells(stem_channels, num_stacks, modules_per_stack):
  """``(name, stack, c_in, c)`` of every cell in network order: ``cell_<stack>_<module>``, its input
  and output widths."""
  c_prev = stem_channels
  for s, c in enumerate(stack_widths(stem_channels, num_stacks)):
    for j in range(modules_per_stack):
      yield f"cell_{s}_{j}", s, (c_prev if j == 0 else c), c
    c_prev = c


def arch_params(params, enc, stem_channels: int = 128, num_stacks: int = 3,
                modules_per_stack: int = 3):
  """:class:`NB101MaskedNet` parameters for the spec ``enc``: cell kernels times their real He
  fan-out sigma, and every cell entry that the spec lacks set to 0. Pure; ``enc`` may be traced.

  With unit-normal kernels (the masked net's ``init``) the result has the discrete network's
  initial distribution (§13.4); its nonzero-mask entry count is :func:`.counts.params`.
  """
  out = dict(params)
  for name, s, c_in, c in cells(stem_channels, num_stacks, modules_per_stack):
    cell = dict(params[name])
    for op, (sigma, om, im) in cell_masks(enc, s, c_in, c).items():
      kmask = im[:, None, None, :, None] & om[:, None, None, None, :]
      k = cell[f"{op}_kernel"]
      cell[f"{op}_kernel"] = jnp.where(kmask, k * sigma[:, None, None, None, None].astype(k.dtype),
                                       0)
      cell[f"{op}_scale"] = jnp.where(om, cell[f"{op}_scale"], 0)
      cell[f"{op}_bias"] = jnp.where(om, cell[f"{op}_bias"], 0)
    out[name] = cell
  return out


def num_live_params(enc, stem_channels: int = 128, num_stacks: int = 3,
                    modules_per_stack: int = 3, num_classes: int = 10, in_channels: int = 3):
  """Number of masked-net parameter entries that exist in the spec (the masks' sum; §13.4
  test 1)."""
  n = 9 * in_channels * stem_channels + 2 * stem_channels
  for _, s, c_in, c in cells(stem_channels, num_stacks, modules_per_stack):
    for op, (_, om, im) in cell_masks(enc, s, c_in, c).items():
      k2 = 9 if op == "conv3x3" else 1
      n = n + jnp.sum(k2 * om.sum(1) * im.sum(1) + 2 * om.sum(1))
  return n + stack_widths(stem_channels, num_stacks)[-1] * num_classes + num_classes


def discrete_params(params, spec, stem_channels: int = 128, num_stacks: int = 3,
                    modules_per_stack: int = 3):
  """Slices a masked-net parameter tree into :class:`NB101Net`'s layout for ``spec`` (concrete):
  slot p's layers are ``[p - 1]`` of the stacks, truncated to the real widths."""
  p = prune(spec)
  m, v = p.array(), p.num_vertices
  slot = padded_slots(v)
  out = {"stem": params["stem"], "head": params["head"]}
  for name, s, c_in, c in cells(stem_channels, num_stacks, modules_per_stack):
    w, cell = params[name], {}
    vc = compute_vertex_channels(c_in, c, m)
    for t in range(1, v):
      i, n = slot[t] - 1, vc[t]
      if m[0, t]:
        cell[f"proj_{slot[t]}"] = {"kernel": w["proj_kernel"][i][..., :n],
                                   "scale": w["proj_scale"][i][:n], "bias": w["proj_bias"][i][:n]}
      if t < v - 1 and p.ops[t] in KERNEL:
        op = "conv1x1" if KERNEL[p.ops[t]] == 1 else "conv3x3"
        cell[f"vertex_{slot[t]}"] = {"kernel": w[f"{op}_kernel"][i][:, :, :n, :n],
                                     "scale": w[f"{op}_scale"][i][:n],
                                     "bias": w[f"{op}_bias"][i][:n]}
    out[name] = cell
  return out
