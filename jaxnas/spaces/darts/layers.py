"""Pure array layers of the DARTS operations: depthwise (shifted-slice or grouped lax) and
pointwise convolutions, 3x3 max and average pooling.

Depthwise convolutions: XLA:CPU runs grouped convolutions (and their gradients inside loops) very
slowly, so on CPU they are computed as ``k*k`` shifted slices times per-channel weights, with a
custom JVP that shapes the backward pass XLA:CPU compiles (:func:`depthwise_shifted`;
measured in ``experiments/bench_depthwise.py``). ``conv_impl='lax'`` uses
``lax.conv_general_dilated`` with ``feature_group_count`` (the default on GPU/TPU). Both compute
the same function (tested).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import unknown
from jaxnas.spaces import ops as L
from jaxnas.spaces.darts.topology import CONV_IMPLS


def _out_size(n, k, stride, padding, dilation):
  return (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def _pad_hw(x, lo, hi, interior: int = 0):
  """Zero padding of the two spatial axes of an NHWC array: ``lo``/``hi`` per axis."""
  return jax.lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (lo[0], hi[0], interior),
                                                  (lo[1], hi[1], interior), (0, 0, 0)))


def _padded(x, padding):
  """The zero-padded input, materialised once (``optimization_barrier``): otherwise XLA:CPU fuses
  the padding, and whatever computed ``x`` (BN, ReLU), into each window separately."""
  return jax.lax.optimization_barrier(_pad_hw(x, (padding, padding), (padding, padding)))


def _windows(xp, k, stride, dilation, out_hw):
  """The ``k*k`` (strided) windows ``(B, Ho, Wo, C)`` of the padded input ``xp``."""
  b, c = xp.shape[0], xp.shape[-1]
  ho, wo = out_hw
  return [jax.lax.slice(xp, (0, i * dilation, j * dilation, 0),
                        (b, i * dilation + (ho - 1) * stride + 1,
                         j * dilation + (wo - 1) * stride + 1, c), (1, stride, stride, 1))
          for i in range(k) for j in range(k)]


def _out_hw(x, k, stride, padding, dilation):
  """The output's ``(Ho, Wo)`` for input ``x``."""
  return tuple(_out_size(n, k, stride, padding, dilation) for n in x.shape[1:3])


def _rows(kernel, dtype):
  """``(k, k, 1, C)`` -> ``(k*k, C)``, row ``i*k + j`` the weights of window ``(i, j)``."""
  k, c = kernel.shape[0], kernel.shape[-1]
  return jax.lax.reshape(kernel.astype(dtype), (k * k, c))


def _weighted_sum(windows, rows):
  """``sum_n windows[n] * rows[n]`` (per-channel weights)."""
  out = None
  for n, s in enumerate(windows):
    t = jax.lax.mul(s, jax.lax.broadcast_in_dim(rows[n], s.shape, (3,)))
    out = t if out is None else jax.lax.add(out, t)
  return out


def _input_tangent(dx, kernel, stride, padding, dilation):
  """The conv's input tangent ``sum_ij shift_ij(dx) * kernel[i, j]``, written as the *adjoint* of
  the form its transpose (the backward pass) should take: one padding of the (dilated, for
  stride 2) cotangent and ``k*k`` slices of it. Written directly, the transpose would zero-pad
  the cotangent ``k*k`` times, a bounds-checked loop XLA:CPU runs 10-20x slower than slices."""
  k = kernel.shape[0]
  b, h, w, c = dx.shape
  ho, wo = (_out_size(n, k, stride, padding, dilation) for n in (h, w))
  rows = _rows(kernel, dx.dtype)
  lo = max(0, dilation * (k - 1) - padding)            # room for the largest backward shift
  tot = [(o - 1) * stride + 1 + lo + max(0, n + padding - (o - 1) * stride - 1)
         for n, o in ((h, ho), (w, wo))]
  canvas = None
  for i in range(k):
    for j in range(k):
      oh, ow = padding - dilation * i + lo, padding - dilation * j + lo
      t = jax.lax.mul(dx, jax.lax.broadcast_in_dim(rows[i * k + j], dx.shape, (3,)))
      t = _pad_hw(t, (oh, ow), (tot[0] - h - oh, tot[1] - w - ow))
      canvas = t if canvas is None else jax.lax.add(canvas, t)
  return jax.lax.slice(canvas, (0, lo, lo, 0), (b, lo + (ho - 1) * stride + 1,
                                                lo + (wo - 1) * stride + 1, c),
                       (1, stride, stride, 1))


def _tangent(xp, kernel, dx, dk, stride, padding, dilation):
  """The tangent for input tangent ``dx`` and kernel tangent ``dk`` (linear in both)."""
  k = kernel.shape[0]
  windows = _windows(xp, k, stride, dilation, _out_hw(dx, k, stride, padding, dilation))
  return jax.lax.add(_input_tangent(dx, kernel, stride, padding, dilation),
                     _weighted_sum(windows, _rows(dk, dx.dtype)))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def depthwise_shifted(x, kernel, stride: int = 1, padding: int = 0, dilation: int = 1):
  """Depthwise conv ``y[b,h,w,c] = sum_ij xpad[b, s*h + d*i, s*w + d*j, c] * kernel[i, j, 0, c]``.

  ``x`` NHWC, ``kernel`` ``(k, k, 1, C)`` (HWIO with ``groups=C``, as PyTorch's
  ``Conv2d(C, C, k, groups=C)``). A custom JVP shapes what reverse mode compiles and keeps:

  * the windows are slices of one materialised padded input (:func:`_padded`);
  * the input tangent is written so that its transpose is one pad and ``k*k`` slices
    (:func:`_input_tangent`); the kernel tangent ``sum_n window_n * dk_n`` transposes to ``k*k``
    per-channel reductions; the tangent is materialised before the transpose reads it at ``k*k``
    offsets;
  * the tangent is a ``jax.checkpoint``: the backward pass keeps the padded input and recomputes
    the windows (JAX would otherwise keep every window and every broadcast kernel row, ``2 k*k``
    input-sized arrays per convolution, which inside the DARTS supernet's ``lax.map`` took the
    memory of one batch-64 genotype past 20 GB).

  Forward mode, ``vmap`` and second order go through the same rule (all tested against
  ``lax.conv_general_dilated``).
  """
  return _of_padded(_padded(x, padding), x, kernel, stride, padding, dilation)


def _of_padded(xp, x, kernel, stride, padding, dilation):
  """The convolution of ``x`` from its padded form ``xp``."""
  k = kernel.shape[0]
  windows = _windows(xp, k, stride, dilation, _out_hw(x, k, stride, padding, dilation))
  return _weighted_sum(windows, _rows(kernel, x.dtype))


@depthwise_shifted.defjvp
def _depthwise_shifted_jvp(stride, padding, dilation, primals, tangents):
  x, kernel = primals
  dx, dk = tangents
  xp = _padded(x, padding)
  y = _of_padded(xp, x, kernel, stride, padding, dilation)
  tangent = jax.checkpoint(functools.partial(_tangent, stride=stride, padding=padding,
                                             dilation=dilation))
  return y, jax.lax.optimization_barrier(tangent(xp, kernel, dx, dk))


#: below this many input elements (B*H*W*C) ``conv_impl='auto'`` uses lax convs on CPU too: tiny
#: networks are compile-bound, and the lax form traces and compiles several times faster.
AUTO_SHIFTED_MIN_SIZE = 1 << 15


def auto_impl(x) -> str:
  """``conv_impl='auto'``'s choice for input ``x``: ``'shifted'`` on CPU when the batch holds at
  least :data:`AUTO_SHIFTED_MIN_SIZE` elements, else ``'lax'``. Under a per-sample ``vmap``
  (:func:`jaxnas.spaces.ops.samples_vmapped`) the batch is ``x.size`` times the samples: there a
  grouped lax convolution with per-sample kernels cost HNAS' trace on DARTS 50-100x the shifted
  form (``experiments/results/bench_darts_per_sample.json``)."""
  size = x.size * L.vmapped_samples()
  return "shifted" if jax.default_backend() == "cpu" and size >= AUTO_SHIFTED_MIN_SIZE else "lax"


def depthwise_conv(x, kernel, stride: int = 1, padding: int = 0, dilation: int = 1,
                   impl: str = "auto"):
  """Depthwise convolution (``groups = C``), symmetric zero padding as PyTorch's ``padding=p``.

  ``impl``: ``'shifted'`` (:func:`depthwise_shifted`), ``'lax'`` (``conv_general_dilated`` with
  ``feature_group_count=C``) or ``'auto'``: shifted on CPU for inputs of at least
  :data:`AUTO_SHIFTED_MIN_SIZE` elements (XLA:CPU runs grouped convolutions, and their gradients
  inside loops, 10-20x slower), lax otherwise (:func:`auto_impl`). Both compute the same function.
  """
  if impl == "auto":
    impl = auto_impl(x)
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
