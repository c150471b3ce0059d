"""Pure array layers of the DARTS operations: depthwise (shifted-slice or grouped lax) and
pointwise convolutions, 3x3 max and average pooling.

Depthwise convolutions: XLA:CPU runs grouped convolutions (and their gradients inside loops) very
slowly, so on CPU they are computed as ``k*k`` shifted slices times per-channel weights, with a
custom JVP whose kernel tangent is one contraction over stacked slices (fast to compile and run in
reverse mode). ``conv_impl='lax'`` uses ``lax.conv_general_dilated`` with ``feature_group_count``
(the default on GPU/TPU). Both compute the same function (tested).
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
