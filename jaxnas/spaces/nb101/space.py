"""NAS-Bench-101 as a registered search space (``get_space('nb101')``; methods-spec §13).

Encoding: an architecture is the pruned spec in the 7-slot padded layout of
:func:`.spec.encode`, flattened to ``int32 (56,)``: the 7x7 adjacency (49) then the 7 op codes
(:data:`.spec.OPS`, -1 on dead slots). Everything the network needs per stack (vertex widths,
output offsets) is computed from it with ``jax.numpy`` (:func:`traced_encoding`), so one compiled
function serves every architecture; the canonical string (``arch_str``) is
``'<V*V digits of the pruned matrix>|<V comma-separated op names>'``. ``encode`` also takes a
``(matrix, ops)`` pair (raw or pruned, as in the shared CSV's ``matrix`` and ``ops`` columns).
There is no global index (NB101 has 423,624 unique cells; the bundled truth covers 300 rows).

Network (:class:`NB101Model`): the fixed-shape masked build of :mod:`.net` (§13.4) with its
parameters named by role (``*_conv/kernel``, ``*_bn/{scale,bias}``, ``classifier/{kernel,bias}``,
as every proxy selects them) and initialised for the given architecture (He fan-out of the real
layer; entries the spec lacks are 0 and get zero gradients), so the variables a proxy receives
are those of the discrete network, zero-padded. BN uses batch statistics (train mode).
"""

from __future__ import annotations

import inspect
from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import _compat
from jaxnas.errors import JaxnasInputError
from jaxnas.benchmarks import nb101
from jaxnas.spaces.base import SearchSpace
from jaxnas.spaces.nb101 import counts
from jaxnas.spaces.nb101 import spec as S
from jaxnas.spaces.nb101.net import (TAP_SITES, cell_layers, cell_masks, cells, conv_bn,
                                     masked_cell, max_pool, real_layers, stack_widths,
                                     unrolled_cell)

_N = S.MAX_VERTICES
ARCH_SHAPE = (_N * _N + _N,)
DEFAULTS = dict(stem_channels=128, num_stacks=3, modules_per_stack=3, num_classes=10,
                bn="batch", weight_init="nasbench", unrolled=False, remat=False, compact=False)
#: BN modes of the NB101 network: batch statistics (train mode, as every proxy runs) or none
#: (identity: zero-cost synflow's BN-free copy, methods-spec §13.3).
BN_MODES = ("batch", "none")
#: Weight initialisations: ``'nasbench'`` (§13.4: He fan-out normal kernels of the real layer,
#: classifier N(0, 0.01^2)) or ``'kaiming_normal'`` (AZ-NAS' ``kaiming_norm_fanin``: every conv and
#: the classifier N(0, 2 / fan_in) of the real layer); biases 0, BN scale 1 and bias 0 in both.
WEIGHT_INITS = ("nasbench", "kaiming_normal")


# ------------------------------------------------------------------------- encoding


def from_spec(spec) -> np.ndarray:
  """``int32 (56,)`` encoding of a spec (pruned here)."""
  enc = S.encode(spec, channels=(1,))
  return np.concatenate([enc.matrix.ravel(), enc.ops]).astype(np.int32)


def to_spec(arch) -> S.Spec:
  """The pruned :class:`.spec.Spec` of an encoding (checked: it must be canonical)."""
  a = np.asarray(arch)
  if a.shape != ARCH_SHAPE or not np.issubdtype(a.dtype, np.integer):
    raise JaxnasInputError(f"NB101 encoding must be {ARCH_SHAPE[0]} integers, got shape {a.shape} "
                           f"dtype {a.dtype}")
  m, ops = a[:_N * _N].reshape(_N, _N), a[_N * _N:]
  live = np.flatnonzero(ops >= 0)
  if len(live) < 2 or live[0] != 0 or live[-1] != _N - 1:
    raise JaxnasInputError(f"NB101 encoding {a.tolist()} has no input/output slots")
  spec = S.parse(m[np.ix_(live, live)], [int(o) for o in ops[live]])
  if not np.array_equal(from_spec(spec), a):
    raise JaxnasInputError(f"NB101 encoding {a.tolist()} is not canonical (pruned, padded)")
  return S.prune(spec)


def encode(arch) -> np.ndarray:
  """Any form -> ``int32 (56,)``: an encoding, a ``(matrix, ops)`` pair, a ``Spec`` or the
  canonical string ``'digits|op,op,...'``; raises :class:`JaxnasInputError` naming the value."""
  if isinstance(arch, S.Spec):
    return from_spec(arch)
  if isinstance(arch, str):
    m, sep, o = arch.partition("|")
    if not sep:
      raise JaxnasInputError(f"NB101 architecture {arch!r} is not 'matrix digits|op,op,...'")
    return from_spec(S.parse(m.strip(), o))
  if isinstance(arch, (tuple, list)) and len(arch) == 2:
    return from_spec(S.parse(*arch))
  a = np.asarray(arch)
  if a.shape == ARCH_SHAPE:
    to_spec(a)
    return a.astype(np.int32)
  raise JaxnasInputError(f"NB101 architecture {arch!r}: give a (matrix, ops) pair, "
                         f"'digits|op,...' or a {ARCH_SHAPE[0]}-integer encoding")


def decode(arch) -> str:
  """Canonical string of an encoding: pruned matrix digits, '|', op names."""
  p = to_spec(arch)
  return "".join(str(int(v)) for v in p.array().ravel()) + "|" + ",".join(p.ops)


def traced_encoding(arch, channels) -> S.Encoding:
  """:class:`.spec.Encoding` of an encoding (jax arrays, ``arch`` may be traced) for the cell
  widths ``channels``: ``compute_vertex_channels`` in ``jax.numpy`` (§13.1.3)."""
  arch = jnp.asarray(arch)
  m = arch[:_N * _N].reshape(_N, _N) > 0
  ops = arch[_N * _N:]
  feeds = m[1:_N - 1, _N - 1]                                   # interior slots 1..5
  n = jnp.maximum(jnp.sum(feeds), 1)
  rank = jnp.cumsum(feeds) - 1
  vcs, offs = [], []
  for c in channels:
    base, rem = c // n, c % n
    inner = jnp.where(feeds, base + (rank < rem), 0)
    vc = [None] * (_N - 2)
    for i in range(_N - 3, -1, -1):                            # slots 5..1 (index i = slot-1)
      succ = [jnp.where(m[i + 1, d + 1], vc[d], 0) for d in range(i + 1, _N - 2)]
      back = jnp.max(jnp.stack(succ)) if succ else 0
      vc[i] = jnp.where(feeds[i], inner[i], back)
    vc = jnp.concatenate([jnp.array([c]), jnp.stack(vc), jnp.array([c])]).astype(jnp.int32)
    fed = jnp.where(feeds, vc[1:_N - 1], 0)
    off = jnp.concatenate([jnp.zeros(1, jnp.int32),
                           jnp.where(feeds, jnp.cumsum(fed) - fed, 0).astype(jnp.int32),
                           jnp.zeros(1, jnp.int32)])
    vcs.append(vc)
    offs.append(off)
  return S.Encoding(m.astype(jnp.int32), ops, ops >= 0, jnp.stack(vcs), jnp.stack(offs))


# ------------------------------------------------------------------------- network


def _he(key, shape, dtype=jnp.float32):
  """He fan-out normal for HWIO kernels: N(0, 2 / (k^2 C_out))."""
  return jax.random.normal(key, shape, dtype) * jnp.sqrt(2.0 / (shape[0] * shape[1] * shape[-1]))


def _he_fan_in(key, shape, dtype=jnp.float32):
  """Kaiming fan-in normal for HWIO kernels and dense ``(in, out)``: N(0, 2 / (k^2 C_in)).

  The distribution of ``ops.kernel_init('kaiming_normal')``, but not its arithmetic (that one
  scales by ``sqrt`` of a float64 variance: draws 1 ulp apart); kept so the committed NB101
  AZ-NAS scores (``experiments/results/nb101_correlation``) stay bit-reproducible."""
  return jax.random.normal(key, shape, dtype) * jnp.sqrt(2.0 / np.prod(shape[:-1]))


_KERNEL_INITS = {"nasbench": _he, "kaiming_normal": _he_fan_in}


class _ConvBN(nn.Module):
  """Parameters of one (or a stack of) conv-BN-ReLU layers: ``<name>_conv/kernel`` and
  ``<name>_bn/{scale,bias}``, initialised by the given functions."""
  kernel_init: callable
  shape: tuple
  features_shape: tuple
  scale_init: callable = nn.initializers.ones

  @nn.compact
  def __call__(self):
    return (_Param(self.kernel_init, self.shape, "kernel", name="conv")(),
            _BN(self.features_shape, self.scale_init, name="bn")())


class _Param(nn.Module):
  init_fn: callable
  shape: tuple
  pname: str

  @nn.compact
  def __call__(self):
    return self.param(self.pname, self.init_fn, self.shape)


class _BN(nn.Module):
  shape: tuple
  scale_init: callable

  @nn.compact
  def __call__(self):
    return (self.param("scale", self.scale_init, self.shape),
            self.param("bias", nn.initializers.zeros, self.shape))


class NB101Model(nn.Module):
  """The NB101 network for any architecture: ``__call__(x, arch)``, arch ``int32 (56,)``.

  ``unrolled=True`` with a *concrete* ``arch`` (numpy, or a jax array outside tracing) runs the
  discrete network of that spec over the same variables (:func:`.net.unrolled_cell`: only its
  layers, at their real widths, compiled blocks shared by every architecture): the engine's
  ``'eager'`` executor. With a traced ``arch`` it runs the masked build as usual. ``bn``:
  ``'batch'`` (batch statistics) or ``'none'`` (every BN an identity: zero-cost synflow).

  ``relu_probe``: ``fn(relu_input) -> array``, its values summed over every ReLU of the network
  (the stem's and every conv-BN-ReLU's, at the layer's real width) and sown as ``relu_probe`` in
  ``intermediates`` (add them with :func:`jaxnas.spaces.sum_probes`), as NASLib hooks every
  ``nn.ReLU``. Only the unrolled build has it: the masked build computes channels and ops the
  spec lacks, which a probe of binary codes would count, so a probe there is refused by name
  (score with ``mode='eager'``, which ``'auto'`` picks for these proxies: ``unrolled_only``).

  ``gates``: a multiplicative gate of ones, shape ``(B, C_out)``, on the output of every conv
  (before its BN) and of the classifier, one per layer of the discrete network at its real width,
  as NASLib's fisher hooks every ``nn.Conv2d`` / ``nn.Linear`` of it: ``gates/<layer>_gate`` with
  ``<layer>`` ``stem``, ``cell_<stack>_<module>_{proj,vertex}_<slot>`` (the names of
  :class:`.net.NB101Net`'s layers) or ``classifier``; d loss / d gate[b, c] is the sum over space
  of activation * gradient (the fisher proxy). Those layers' kernels are slices of the stacked
  full-width variables, so each gated layer's real kernel is also sown, under the gate's name, in
  ``intermediates/gate_kernels`` (by ``init`` with ``mutable=True``; fisher reads the weights per
  output channel off its shape). Only the unrolled build has gates: the masked build computes
  channels and ops the spec lacks and its vertex convs' fan-in is the stack width, not the
  vertex's, so gates there are refused by name (``'auto'`` picks ``'eager'`` for fisher too).

  ``tap``: ``fn(site, tensor, block, part) -> array``, its values summed over the tensors of
  :data:`.net.TAP_SITES` and sown as ``tap`` in ``intermediates`` (:func:`jaxnas.spaces.sum_probes`
  adds them; MeCo, AZ-NAS): ``'stem_bn'``, ``'stem'`` (block 0), ``'downsample'`` (block = the
  cell it feeds), and per cell (block = ``1 + stack * modules_per_stack + module``, as
  ``block_input``) the BN and ReLU outputs of
  each projection (``'proj_bn'``, ``'proj'``) and vertex conv (``'conv_bn'``, ``'conv'``), each
  max-pool vertex's output (``'pool'``; part = the padded slot of the vertex, 6 for proj_out) and
  the cell's output (``'cell'``, part 0); every tensor at the discrete layer's real width. Only the
  unrolled build has it (the masked build's tensors carry channels and ops the spec lacks), so a
  tap there is refused by name (``'auto'`` scores meco eagerly: ``unrolled_only``).

  ``block_input``: ``fn(h, block) -> h`` applied to every block's input (AZ-NAS): blocks are the
  stem (0, no input) and the cells ``1 + stack * modules_per_stack + module`` in forward order,
  the first cell of a later stack with the max-pool that feeds it (its input is the previous
  stack's output, at twice the resolution); :func:`block_shapes` gives their shapes. Both builds.

  ``weight_init``: :data:`WEIGHT_INITS`; ``'kaiming_normal'`` draws each real layer's kernel from
  N(0, 2 / its real fan-in) (the shared layout's stacked kernels per slot, the compact layers
  alike) and the classifier from N(0, 2 / its width).

  ``remat``: each cell without a hook is wrapped in ``jax.checkpoint``, so a gradient keeps only
  the cells' inputs and recomputes each cell's intermediates in the backward pass: the same
  values for about one more forward pass (eager, benchmark network, peak resident memory:
  grad_norm at batch 32 4.1 -> 2.7 GiB, +16 % time; zico at 2 x 32 6.4 -> 3.5 GiB, +5-10 %; zico
  at its paper's 2 x 128 7.0 GiB with it; ``jaxnas score --config remat=true``).

  ``compact`` (with ``unrolled`` and a concrete ``arch``): the parameters are only the discrete
  network's layers, each at its real widths (``stem``, ``cell_<s>_<j>_<layer>/{conv,bn}`` with
  ``<layer>`` as in :class:`.net.Cell`, ``classifier``: the tree :func:`compact_params` slices
  from the shared one), not the shared full-width stacks: the same logits over ~1/13 of the
  entries (benchmark network: 4.3M instead of 57M on average), for the routes whose cost grows
  with the parameters differentiated (per-sample gradients;
  :meth:`jaxnas.spaces.Network.compact`)."""
  stem_channels: int = 128
  num_stacks: int = 3
  modules_per_stack: int = 3
  num_classes: int = 10
  bn: str = "batch"
  weight_init: str = "nasbench"
  unrolled: bool = False
  remat: bool = False
  relu_probe: Optional[Callable] = None
  gates: bool = False
  tap: Optional[Callable] = None
  block_input: Optional[Callable] = None
  compact: bool = False

  @nn.compact
  def __call__(self, x, arch):
    widths = stack_widths(self.stem_channels, self.num_stacks)
    enc = traced_encoding(arch, widths)
    unroll = self.unrolled and not isinstance(arch, jax.core.Tracer)
    if unroll:  # numpy only: inside a trace (eval_shape, grad) jnp would stage the encoding
      enc_np = S.encode(to_spec(np.asarray(arch)), widths)
    elif self.compact:
      raise JaxnasInputError(
          "NB101's compact parameters (compact=True) are the layers of one concrete "
          "architecture: they need unrolled=True and a concrete arch, not a traced one")
    probes = []
    on_relu = None
    if self.relu_probe is not None:
      if not unroll:
        raise JaxnasInputError(
            "NB101's relu_probe (nwot, swap, tenas_regions) runs on the unrolled network of a "
            "concrete architecture: score with mode='eager' (the masked build of a traced "
            "architecture computes units the spec does not have)")
      on_relu = lambda h: probes.append(self.relu_probe(h))
    tapped = []
    on_tap = None
    if self.tap is not None:
      if not unroll:
        raise JaxnasInputError(
            "NB101's tap (meco, meco_opt) runs on the unrolled network of a concrete "
            "architecture: score with mode='eager' (the masked build of a traced architecture "
            "computes units the spec does not have)")

      def on_tap(site, v, block, part):
        assert site in TAP_SITES, site
        tapped.append(self.tap(site, v, block, part))
    gate_kernels = {}
    gate = None
    if self.gates:
      if not unroll:
        raise JaxnasInputError(
            "NB101's gates (fisher) exist on the unrolled network of a concrete architecture: "
            "score with mode='eager' (the masked build of a traced architecture computes units "
            "the spec does not have, its vertex convs at the stack width)")

      def gate(layer, kernel):
        gate_kernels[layer + "_gate"] = kernel
        return self.variable("gates", layer + "_gate", jnp.ones,
                             (x.shape[0], kernel.shape[-1])).value
    c0 = self.stem_channels
    kinit = _KERNEL_INITS[self.weight_init]
    k, (s, b) = _ConvBN(kinit, (3, 3, x.shape[-1], c0), (c0,), name="stem")()
    x = conv_bn(x, k, s, b, self.bn, None if gate is None else gate("stem", k))
    if on_relu is not None:
      on_relu(x)
    if on_tap is not None:
      on_tap("stem_bn", x, 0, 0)
    x = jax.nn.relu(x)
    if on_tap is not None:
      on_tap("stem", x, 0, 0)
    c_prev = c0
    for st, c in enumerate(widths):
      for j in range(self.modules_per_stack):
        blk = 1 + st * self.modules_per_stack + j
        if self.block_input is not None:
          x = self.block_input(x, blk)
        if st and not j:
          x = max_pool(x, 2, 2)
          if on_tap is not None:
            on_tap("downsample", x, blk, 0)
        c_in = c_prev if j == 0 else c
        if self.compact:   # the real layers only, declared at their real widths
          layers = {}
          for layer, _, _, ks, ci, co in cell_layers(enc_np.matrix, enc_np.ops, enc_np.vc[st],
                                                     c_in, c):
            k, (sc, bi) = _ConvBN(kinit, (ks, ks, ci, co), (co,), name=f"cell_{st}_{j}_{layer}")()
            layers[layer] = (k, sc, bi)
        else:
          w = self._stacked_cell(enc, st, j, c_in, c)
          layers = real_layers(w, enc_np.matrix, enc_np.ops, enc_np.vc[st], c) if unroll else None
        hooked = gate is not None or on_tap is not None or on_relu is not None
        if self.remat and not hooked:   # recompute the cell in the backward pass
          if unroll:
            spec = (enc_np.matrix, enc_np.ops, enc_np.vc[st])
            x = jax.checkpoint(lambda x, w, spec=spec, c=c: unrolled_cell(
                x, w, *spec, c, self.bn))(x, layers)
          else:
            spec = (enc.matrix, enc.ops, enc.vc[st], enc.offsets[st])
            x = jax.checkpoint(lambda x, w, spec=spec, c=c: masked_cell(
                x, w, *spec, c, self.bn))(x, w)
        elif unroll:
          cg = None if gate is None else (
              lambda layer, kernel, pre=f"cell_{st}_{j}_": gate(pre + layer, kernel))
          ct = None if on_tap is None else (
              lambda site, v, part, blk=blk: on_tap(site, v, blk, part))
          x = unrolled_cell(x, layers, enc_np.matrix, enc_np.ops, enc_np.vc[st], c, self.bn,
                            on_relu, cg, ct)
          if ct is not None:
            ct("cell", x, 0)
        else:
          x = masked_cell(x, w, enc.matrix, enc.ops, enc.vc[st], enc.offsets[st], c, self.bn)
      c_prev = c
    if probes:
      self.sow("intermediates", "relu_probe",
               jax.tree_util.tree_map(lambda *v: sum(v[1:], v[0]), *probes),
               init_fn=lambda: None, reduce_fn=lambda _, v: v)
    if tapped:
      self.sow("intermediates", "tap", jax.tree_util.tree_map(lambda *v: sum(v[1:], v[0]), *tapped),
               init_fn=lambda: None, reduce_fn=lambda _, v: v)
    h = jnp.mean(x, axis=(1, 2))
    head = nn.Dense(self.num_classes, kernel_init=(
        _he_fan_in if self.weight_init == "kaiming_normal" else nn.initializers.normal(0.01)),
                    bias_init=nn.initializers.zeros, name="classifier")
    y = head(h)
    if gate is not None:
      y = y * gate("classifier", head.variables["params"]["kernel"]).astype(y.dtype)
      self.sow("intermediates", "gate_kernels", gate_kernels, init_fn=lambda: None,
               reduce_fn=lambda _, v: v)
    return y

  def _stacked_cell(self, enc, st: int, j: int, c_in: int, c: int) -> dict:
    """Declares cell ``(st, j)``'s shared full-width variables, ``{op: (kernel, scale, bias)}``
    stacked over slots, initialised for the architecture ``enc`` (He fan-out of the real layer,
    entries the spec lacks 0)."""
    factors = cell_masks(enc, st, c_in, c)
    w = {}
    for op, n, ks, ci in (("proj", _N - 1, 1, c_in), ("conv1x1", _N - 2, 1, c),
                          ("conv3x3", _N - 2, 3, c)):
      sigma, om, im = factors[op]
      if op == "proj" and self.weight_init == "kaiming_normal":   # fan-in: the cell's input
        sigma = jnp.full_like(sigma, np.sqrt(2.0 / c_in))          # (vertex convs: c_in = c_out)

      def kinit(key, shape, dtype=jnp.float32, sigma=sigma, om=om, im=im):
        mask = im[:, None, None, :, None] & om[:, None, None, None, :]
        return jnp.where(mask, jax.random.normal(key, shape, dtype)
                         * sigma[:, None, None, None, None], 0).astype(dtype)

      def sinit(key, shape, dtype=jnp.float32, om=om):
        return om.astype(dtype)

      kk, (sc, bi) = _ConvBN(kinit, (n, ks, ks, ci, c), (n, c), sinit,
                             name=f"cell_{st}_{j}_{op}")()
      w[op] = (kk, sc, bi)
    return w


def model(**config) -> NB101Model:
  unknown_keys = sorted(set(config) - set(DEFAULTS))
  if unknown_keys:
    raise JaxnasInputError(f"unknown NB101 network option(s) {unknown_keys}; allowed: "
                           f"{', '.join(DEFAULTS)}")
  if config.get("bn", "batch") not in BN_MODES:
    raise JaxnasInputError(f"NB101 option bn={config['bn']!r} is not one of "
                           f"{', '.join(BN_MODES)}")
  if config.get("weight_init", "nasbench") not in WEIGHT_INITS:
    raise JaxnasInputError(f"NB101 option weight_init={config['weight_init']!r} is not one of "
                           f"{', '.join(WEIGHT_INITS)}")
  return NB101Model(**config)


def block_shapes(x_shape, stem_channels: int = 128, num_stacks: int = 3,
                 modules_per_stack: int = 3, **_) -> tuple:
  """``(in_shape, out_shape)`` of the cells, blocks ``1..num_stacks * modules_per_stack`` of
  :class:`NB101Model` (``block_input``), for an input batch of ``x_shape`` (NHWC): the first cell
  of a later stack takes the previous stack's output and max-pools it (2x2, stride 2, 'same')."""
  b, h, w = x_shape[:3]
  prev, out = (b, h, w, stem_channels), []
  for st, c in enumerate(stack_widths(stem_channels, num_stacks)):
    if st:
      h, w = -(-h // 2), -(-w // 2)
    for _ in range(modules_per_stack):
      out.append((prev, (b, h, w, c)))
      prev = out[-1][1]
  return tuple(out)


def compact_params(params, arch, stem_channels: int = 128, num_stacks: int = 3,
                   modules_per_stack: int = 3, **_):
  """The parameters of ``model(compact=True)`` for the concrete ``arch``: the shared tree's stem and
  classifier, and per cell layer of the spec its slices of the stacked variables
  (:func:`.net.real_layers`); the same values, so the compact network's logits are the shared
  one's, and its gradients the shared gradients' only entries that can be nonzero."""
  widths = stack_widths(stem_channels, num_stacks)
  enc = S.encode(to_spec(np.asarray(arch)), widths)
  out = {"stem": params["stem"], "classifier": params["classifier"]}
  for name, st, _, c in cells(stem_channels, num_stacks, modules_per_stack):
    w = {op: (params[f"{name}_{op}"]["conv"]["kernel"], params[f"{name}_{op}"]["bn"]["scale"],
              params[f"{name}_{op}"]["bn"]["bias"]) for op in ("proj", "conv1x1", "conv3x3")}
    for layer, (k, sc, b) in real_layers(w, enc.matrix, enc.ops, enc.vc[st], c).items():
      out[f"{name}_{layer}"] = {"conv": {"kernel": k}, "bn": {"scale": sc, "bias": b}}
  return out


def active_mask(params, arch):
  """Per-layer 0/1 masks: a cell layer counts when the spec has it (projection from the input
  into a live vertex; a conv of that kind at a slot); stem, head: 1. Entries of a counted layer
  that the spec lacks (channels beyond a vertex's width) are 0 in the variables and their
  gradients, so per-layer masks suffice."""
  enc = traced_encoding(arch, (1,))
  a, ops = enc.matrix > 0, enc.ops
  t = np.arange(1, _N)
  on = {"proj": a[0, t], "conv1x1": ops[t[:-1]] == S.CONV1X1,
        "conv3x3": ops[t[:-1]] == S.CONV3X3}

  def leaf(path, x):
    names = [str(getattr(k, "key", k)) for k in path]
    for op, m in on.items():
      if names[0].endswith("_" + op):
        return m.astype(jnp.float32)
    return jnp.float32(1.0)
  return jax.tree_util.tree_map_with_path(leaf, params)


_ARGS = {fn: set(inspect.signature(fn).parameters) - {"spec"} for fn in (counts.params, counts.flops)}


def _concrete(fn):
  """``fn(spec, **config)`` of one or many encodings; traced encodings through a callback."""
  def count(arch, **config):
    cfg = {k: v for k, v in config.items() if k in _ARGS[fn]}

    def host(a):
      a = np.asarray(a)
      flat = a.reshape(-1, ARCH_SHAPE[0])
      return np.array([fn(to_spec(r), **cfg) for r in flat], np.float64).reshape(a.shape[:-1])

    if isinstance(arch, jax.core.Tracer):
      out = jax.ShapeDtypeStruct(arch.shape[:-1], jnp.float32)
      return _compat.pure_callback(lambda a: host(a).astype(np.float32), out, arch)
    return host(arch)
  return count


def sample(key, n: int):
  """``n`` valid NB101 architectures, uniform over raw specs (nasbench's random spec: each
  upper-triangular edge with probability 1/2, interior ops uniform), rejected until valid."""
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
  out = []
  while len(out) < n:
    m = np.triu(rng.integers(0, 2, (_N, _N)), 1)
    ops = ["input"] + [S.INTERIOR_OPS[i] for i in rng.integers(0, 3, _N - 2)] + ["output"]
    spec = S.parse(m, ops)
    if S.is_valid(spec):
      out.append(from_spec(spec))
  return np.stack(out)


def describe(arch) -> dict:
  """A search result's fields: the canonical ``matrix|ops`` string, the NB101 graph hash and the
  parameter count (M) of the benchmark network."""
  a = encode(arch)
  return {"arch_str": decode(a), "hash": S.spec_hash(to_spec(a)),
          "params_M": float(counts.params(to_spec(a))) / 1e6}


#: MeCo's NB101 script (methods-spec §13, HamsterMimi/MeCo ``correlation/NAS_Bench_101.py``): hook
#: events per tensor of ``NB101Model.tap``, in :data:`TAP_SITES` order (derived in
#: :mod:`jaxnas.proxies.meco`'s docstring), and its input, one N(0, 1) image of 64 x 64.
MECO_HOOK_EVENTS = dict(zip(TAP_SITES, (2, 3, 1, 2, 3, 2, 4, 2, 1)))
#: The reference protocols' settings on NAS-Bench-101 (``SearchSpace.proxy_settings``).
PROXY_SETTINGS = {
    "epsilon": {"weights": (1e-4, 10.0)},   # epsinas Reproduce.ipynb (methods-spec §13.3.2)
    "meco": {"hook_events": MECO_HOOK_EVENTS, "gaussian_input": (1, 64, 64)},
}

SPACE = SearchSpace(
    name="nb101",
    arch_shape=ARCH_SHAPE,
    num_archs=None,
    model=model,
    encode=encode,
    decode=decode,
    sample=sample,
    active_mask=active_mask,
    count_params=_concrete(counts.params),
    count_flops=_concrete(counts.flops),
    unrolls=True,
    masked=True,
    unrolled_only=("relu_probe", "gates", "tap"),   # auto: nwot, swap, tenas_regions, fisher,
                                                    # meco, meco_opt eagerly
    provides=("nonlinear_readout",),   # every op ends in a ReLU
    compact_params=compact_params,
    block_shapes=block_shapes,
    describe=describe,
    metrics=nb101.METRICS,
    accuracy=nb101.accuracy_of,  # by encoding; NaN for an architecture not in the table
    proxy_settings=PROXY_SETTINGS,
    gained_fields={"weight_init": "nasbench"},   # the scores before AZ-NAS' Kaiming init
)
