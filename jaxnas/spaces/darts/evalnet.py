"""The DARTS evaluation network of one genotype as a Flax module (``model.NetworkCIFAR``).

:class:`DartsEvalNet` (evaluation default C=36, L=20) holds only the genotype's operations (two per
intermediate node), with the optional auxiliary head and drop-path. Its parameters are those of
:class:`~jaxnas.spaces.darts.supernet.DartsSupernet` (``affine=True, pool_bn=False``) restricted to
the genotype's edges: :func:`jaxnas.spaces.darts.layout.discrete_params` maps one onto the other,
and the two compute the same function.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasInputError
from jaxnas.spaces import ops as L
from jaxnas.spaces.darts.blocks import (_check_config, _declare_bn, _declare_conv, _drop_states,
                                        _head, _preprocess, _stem, _tracking, _write, check_input,
                                        declare_op)
from jaxnas.spaces.darts.operations import _bn, apply_op
from jaxnas.spaces.darts.topology import NODE_OFFSET, NUM_NODES, OP_KEYS, SKIP, cell_plan

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
      kern, _ = _declare_conv(f"conv_{t}", h.shape[-1], cout, k, (), self.weight_init)
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
