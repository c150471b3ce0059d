"""Closed-form parameter and FLOP counts of the NB101 network (methods-spec §13.1.5).

Parameters: a ConvBNReLU with kernel k, widths c_in -> c_out has k^2 c_in c_out + 2 c_out
parameters (no conv bias; BN scale and bias).

    params = stem(k=3, 3 -> C0) + sum over cells [ sum_{t: M[0,t]=1} proj(C_in -> vc[t])
             + sum over conv vertices conv(k_t, vc[t] -> vc[t]) ] + C_last * classes + classes

FLOPs (tensorwatch, as NASLib ``flops``; one image): conv k^2 c_in c_out H W, BN 2 C H W, ReLU
C H W, max pool k^2 C H_out W_out (9 C H W for the vertex pool, 4 C (H/2)(W/2) to downsample),
dense C_last * classes; adds, concatenation and the mean are free.

At the default (full) size these equal NASLib's ``params * 1e6`` and ``flops * 1e6`` (verified on
300/300 rows of ``nb101_naslib300.csv``): e.g. 2,694,282 parameters for the Inception-like spec
and 882,570 for the input -> output model. Specs are pruned first.
"""

from __future__ import annotations

from jaxnas.spaces.nb101.spec import KERNEL, compute_vertex_channels, prune


def _stacks(stem_channels, num_stacks):
  """(c_in of the stack's first cell, cell width) per stack."""
  return [(stem_channels * 2 ** max(s - 1, 0), stem_channels * 2 ** s) for s in range(num_stacks)]


def _cells(p, stem_channels, num_stacks, modules_per_stack):
  """(c_in, c_out, vc, stack index) of every cell in forward order."""
  m = p.array()
  for s, (c0, c) in enumerate(_stacks(stem_channels, num_stacks)):
    for j in range(modules_per_stack):
      c_in = c0 if j == 0 else c
      yield c_in, c, compute_vertex_channels(c_in, c, m), s


def params(spec, stem_channels: int = 128, num_stacks: int = 3, modules_per_stack: int = 3,
           num_classes: int = 10, in_channels: int = 3) -> int:
  """Number of trainable parameters (convs, BN scale and bias, dense weight and bias)."""
  p = prune(spec)
  m, v = p.array(), p.num_vertices

  def cbr(k, a, b):
    return k * k * a * b + 2 * b

  n = cbr(3, in_channels, stem_channels)
  c = stem_channels
  for c_in, c, vc, _ in _cells(p, stem_channels, num_stacks, modules_per_stack):
    n += sum(cbr(1, c_in, vc[t]) for t in range(1, v) if m[0, t])
    n += sum(cbr(KERNEL[p.ops[t]], vc[t], vc[t]) for t in range(1, v - 1) if p.ops[t] in KERNEL)
  return n + c * num_classes + num_classes


def flops(spec, stem_channels: int = 128, num_stacks: int = 3, modules_per_stack: int = 3,
          num_classes: int = 10, in_channels: int = 3, resolution: int = 32) -> int:
  """Tensorwatch FLOPs of one ``resolution`` x ``resolution`` image (see the module docstring)."""
  p = prune(spec)
  m, v = p.array(), p.num_vertices

  def cbr(k, a, b, hw):  # conv + BN + ReLU
    return (k * k * a * b + 3 * b) * hw

  hw = resolution * resolution
  n = cbr(3, in_channels, stem_channels, hw)
  res, c, stack = resolution, stem_channels, 0
  for c_in, c, vc, s in _cells(p, stem_channels, num_stacks, modules_per_stack):
    if s != stack:  # 2x2 max pool, stride 2, 'same' (TF): ceil(H / 2)
      stack, res = s, (res + 1) // 2
      n += 4 * c_in * res * res
    hw = res * res
    n += sum(cbr(1, c_in, vc[t], hw) for t in range(1, v) if m[0, t])
    for t in range(1, v - 1):
      n += cbr(KERNEL[p.ops[t]], vc[t], vc[t], hw) if p.ops[t] in KERNEL else 9 * vc[t] * hw
  return n + c * num_classes
