"""Infinite-width kernels of convolutional networks, as small ``(init_fn, apply_fn, kernel_fn)`` layers.

The combinators of neural-tangents' ``stax`` (Novak et al., ICLR 2020) that NB201 cells need,
written in jaxnas so the analytic kernels run on current JAX (``experiments/nt_oracle.py`` checks
them against neural-tangents 0.6.5). Every layer is a triple:

* ``init_fn(key, input_shape) -> (output_shape, params)``: standard-normal weights;
* ``apply_fn(params, x)``: the finite network in NTK parameterisation (a conv or dense layer
  computes ``W_std / sqrt(fan_in) * (x * W)``, no biases);
* ``kernel_fn``: maps a :class:`Kernel` to the layer's output :class:`Kernel`, or, called with
  inputs ``kernel_fn(x1, x2=None, get=None)``, returns the kernels of the whole network on them.

A :class:`Kernel` holds the NNGP covariance ``K`` and the NTK ``Theta`` of *one joint batch*
``Z = [x1; x2]``, with full spatial covariance: shape ``(B, B, H, W, H, W)`` before the global pool,
``(B, B)`` after. Keeping the joint batch makes every quantity a layer needs available (the ReLU
needs the variances ``K[a, a, p, p]`` of both inputs); ``kernel_fn(x1, x2)`` returns the
``x1``-by-``x2`` block. Kernels are per channel: the infinite-width kernel of ``n`` outputs is
``K (x) I_n``.

Layer rules (``A_k`` averages a kernel over the ``k x k`` window pairs ``(p + d, q + d)`` with zero
padding, ``1/k^2`` of the window sum, as the fan-in counts padded positions):

* input: ``K = <x_a(p), x_b(q)> / C_in``, ``Theta = 0``;
* ``Conv``: ``K' = W_std^2 A_k(K)``, ``Theta' = W_std^2 A_k(K + Theta)``;
* ``Dense``: ``K' = W_std^2 K``, ``Theta' = W_std^2 (K + Theta)``;
* ``Relu`` (arc-cosine kernel, Cho & Saul 2009): with ``cos t = K_ab / sqrt(K_aa K_bb)``,
  ``K' = sqrt(K_aa K_bb) (sin t + (pi - t) cos t) / (2 pi)``, ``Theta' = Theta (pi - t) / (2 pi)``
  (``t`` computed as ``atan2(sqrt(K_aa K_bb - K_ab^2), K_ab)``, exact on the diagonal);
* a linear parameter-free map ``y = Q x`` over pixels (``AvgPool``, ``Linear``):
  ``K' = Q K Q^T``, ``Theta' = Q Theta Q^T``;
* ``GlobalAvgPool``: the mean over both pixel axes; ``Identity``; ``Zero``;
* ``FanOut(n)`` copies, ``parallel`` applies layers branch-wise, ``FanInSum`` adds the branches'
  kernels: exact only for *independent* branches (see :mod:`jaxnas.ntk.infinite` for how NB201
  cells are expanded so that they are).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasInputError


class Kernel(NamedTuple):
  """NNGP and NTK of a joint batch: ``(B, B, H, W, H, W)`` (spatial) or ``(B, B)`` (flat)."""
  nngp: jax.Array
  ntk: jax.Array


class Layer(NamedTuple):
  init_fn: Callable
  apply_fn: Callable
  kernel_fn: Callable


def _input_kernel(x) -> Kernel:
  x = jnp.asarray(x)
  if x.ndim == 4:
    k = jnp.einsum("ahwc,bgvc->abhwgv", x, x) / x.shape[-1]
  elif x.ndim == 2:
    k = x @ x.T / x.shape[-1]
  else:
    raise JaxnasInputError(f"inputs must be NHWC images or (batch, features), got shape {x.shape}")
  return Kernel(k, jnp.zeros_like(k))


def _layer(kernel_rule: Callable, init_fn: Callable, apply_fn: Callable) -> Layer:
  """A layer whose ``kernel_fn`` also accepts inputs ``(x1, x2=None, get=None)``."""

  def kernel_fn(k_or_x1, x2=None, get=None):
    if isinstance(k_or_x1, Kernel):
      return kernel_rule(k_or_x1)
    x1 = jnp.asarray(k_or_x1)
    if x2 is not None and jnp.shape(x2)[1:] != x1.shape[1:]:
      raise JaxnasInputError(f"x1 and x2 differ in shape beyond the batch: {x1.shape} vs "
                             f"{jnp.shape(x2)}")
    z = x1 if x2 is None else jnp.concatenate([x1, jnp.asarray(x2, x1.dtype)])
    out = kernel_rule(_input_kernel(z))
    if x2 is not None:
      n1 = x1.shape[0]
      out = Kernel(*(a[:n1, n1:] for a in out))
    if get is None:
      return out
    if isinstance(get, str):
      return getattr(out, get)
    return tuple(getattr(out, g) for g in get)

  return Layer(init_fn, apply_fn, kernel_fn)


def _spatial(k: jax.Array, what: str):
  if k.ndim != 6:
    raise JaxnasInputError(f"{what} needs a spatial (image) kernel, got one of rank {k.ndim}")
  return k


# ------------------------------------------------------------------ parameter-free layers


def Identity() -> Layer:  # noqa: N802  (stax naming)
  return _layer(lambda k: k, lambda key, s: (s, ()), lambda p, x, **kw: x)


def Zero() -> Layer:  # noqa: N802
  """The zero map (NB201's ``none`` edge)."""
  return _layer(lambda k: Kernel(jnp.zeros_like(k.nngp), jnp.zeros_like(k.ntk)),
                lambda key, s: (s, ()), lambda p, x, **kw: jnp.zeros_like(x))


def Relu() -> Layer:  # noqa: N802
  def rule(k: Kernel) -> Kernel:
    b = k.nngp.shape[0]
    if k.nngp.ndim == 6:
      h, w = k.nngp.shape[2:4]
      flat = k.nngp.reshape(b, b, h * w, h * w)
      var = jnp.einsum("aapp->ap", flat).reshape(b, h, w)
      prod = var[:, None, :, :, None, None] * var[None, :, None, None, :, :]
    else:
      var = jnp.diagonal(k.nngp)
      prod = var[:, None] * var[None, :]
    # sqrt(K_aa K_bb) sin t = sqrt(K_aa K_bb - K_ab^2) and t = atan2(that, K_ab): well conditioned
    # where arccos(K_ab / sqrt(K_aa K_bb)) is not (t near 0, e.g. the diagonal, where it is exact 0)
    sin_root = jnp.sqrt(jnp.maximum(prod - k.nngp * k.nngp, 0.0))
    t = jnp.arctan2(sin_root, k.nngp)
    nngp = (sin_root + (np.pi - t) * k.nngp) / (2 * np.pi)
    ntk = k.ntk * (np.pi - t) / (2 * np.pi)
    return Kernel(nngp, ntk)

  return _layer(rule, lambda key, s: (s, ()), lambda p, x, **kw: jax.nn.relu(x))


def _pixel_map(q: jax.Array):
  """Kernel rule of ``y = Q x`` over the pixels (``Q``: ``(HW, HW)``)."""

  def rule(k: Kernel) -> Kernel:
    def one(a):
      a = _spatial(a, "a pixel map")
      b, _, h, w = a.shape[:4]
      flat = a.reshape(b, b, h * w, h * w)
      return jnp.einsum("pq,abqr,sr->abps", q, flat, q).reshape(a.shape)
    return Kernel(one(k.nngp), one(k.ntk))

  return rule


def Linear(q) -> Layer:  # noqa: N802
  """A fixed linear map over pixels, ``y[:, p] = sum_q Q[p, q] x[:, q]`` (``Q``: ``(HW, HW)``)."""
  q = jnp.asarray(q)

  def apply_fn(p, x, **kw):
    b, h, w, c = x.shape
    return jnp.einsum("pq,bqc->bpc", q.astype(x.dtype), x.reshape(b, h * w, c)).reshape(x.shape)

  return _layer(lambda k: _pixel_map(q.astype(k.nngp.dtype))(k), lambda key, s: (s, ()),
                apply_fn)


@functools.lru_cache(maxsize=16)
def avg_pool_matrix(h: int, w: int) -> np.ndarray:
  """The 3x3 average pool (stride 1, padding excluded from the count) as a ``(h*w, h*w)`` matrix."""
  q = np.zeros((h * w, h * w))
  for i in range(h):
    for j in range(w):
      nb = [(a, b) for a in range(i - 1, i + 2) for b in range(j - 1, j + 2)
            if 0 <= a < h and 0 <= b < w]
      for a, b in nb:
        q[i * w + j, a * w + b] = 1.0 / len(nb)
  return q


def AvgPool() -> Layer:  # noqa: N802
  """3x3 average pool, stride 1, SAME, padding not counted (PyTorch ``count_include_pad=False``)."""
  from jaxnas.spaces import ops  # pylint: disable=g-import-not-at-top

  def rule(k: Kernel) -> Kernel:
    h, w = _spatial(k.nngp, "AvgPool").shape[2:4]
    return _pixel_map(jnp.asarray(avg_pool_matrix(h, w), k.nngp.dtype))(k)

  return _layer(rule, lambda key, s: (s, ()), lambda p, x, **kw: ops.avg_pool_3x3(x))


def GlobalAvgPool() -> Layer:  # noqa: N802
  def rule(k: Kernel) -> Kernel:
    return Kernel(*(jnp.mean(_spatial(a, "GlobalAvgPool"), axis=(2, 3, 4, 5)) for a in k))

  return _layer(rule, lambda key, s: ((s[0], s[-1]), ()),
                lambda p, x, **kw: jnp.mean(x, axis=(1, 2)))


# ------------------------------------------------------------------ layers with weights


def _window_average(a: jax.Array, size: int) -> jax.Array:
  """``A_k``: ``(1/k^2) sum_d a[.., p + d, .., q + d]`` over the ``k x k`` offsets, zero padded."""
  if size == 1:
    return a
  r = size // 2
  b, _, h, w = a.shape[:4]
  pad = jnp.pad(a, ((0, 0), (0, 0), (r, r), (r, r), (r, r), (r, r)))
  out = jnp.zeros_like(a)
  for dy in range(size):
    for dx in range(size):
      out = out + pad[:, :, dy:dy + h, dx:dx + w, dy:dy + h, dx:dx + w]
  return out / (size * size)


def Conv(out_chan: int, filter_shape: Sequence[int] = (3, 3), padding: str = "SAME",  # noqa: N802
         W_std: float = 1.0, b_std: Optional[float] = None) -> Layer:  # noqa: N803
  """Stride-1 ``SAME`` convolution with a square odd filter, NTK parameterisation, no bias."""
  size = int(filter_shape[0])
  if padding != "SAME" or len(filter_shape) != 2 or filter_shape[1] != size or size % 2 == 0:
    raise JaxnasInputError(f"Conv supports square odd filters with padding 'SAME', got "
                           f"filter_shape={tuple(filter_shape)}, padding={padding!r}")
  if b_std is not None:
    raise JaxnasInputError(f"Conv has no bias here (b_std=None), got b_std={b_std!r}")
  w2 = float(W_std) ** 2

  def init_fn(key, s):
    return s[:-1] + (out_chan,), jax.random.normal(key, (size, size, s[-1], out_chan))

  def apply_fn(p, x, **kw):
    y = jax.lax.conv_general_dilated(x, p.astype(x.dtype), (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return W_std / np.sqrt(size * size * x.shape[-1]) * y

  def rule(k: Kernel) -> Kernel:
    _spatial(k.nngp, "Conv")
    return Kernel(w2 * _window_average(k.nngp, size), w2 * _window_average(k.nngp + k.ntk, size))

  return _layer(rule, init_fn, apply_fn)


def Dense(out_dim: int, W_std: float = 1.0, b_std: Optional[float] = None) -> Layer:  # noqa: N802,N803
  """Dense layer on ``(batch, features)``, NTK parameterisation, no bias."""
  if b_std is not None:
    raise JaxnasInputError(f"Dense has no bias here (b_std=None), got b_std={b_std!r}")
  w2 = float(W_std) ** 2

  def init_fn(key, s):
    return s[:-1] + (out_dim,), jax.random.normal(key, (s[-1], out_dim))

  def rule(k: Kernel) -> Kernel:
    if k.nngp.ndim != 2:
      raise JaxnasInputError("Dense needs a flat kernel: put GlobalAvgPool before it")
    return Kernel(w2 * k.nngp, w2 * (k.nngp + k.ntk))

  return _layer(rule, init_fn,
                lambda p, x, **kw: W_std / np.sqrt(x.shape[-1]) * x @ p.astype(x.dtype))


# ------------------------------------------------------------------ composition


def serial(*layers: Layer) -> Layer:
  """Layers one after another."""

  def init_fn(key, s):
    params = []
    for layer, k in zip(layers, jax.random.split(key, max(len(layers), 1))):
      s, p = layer.init_fn(k, s)
      params.append(p)
    return s, tuple(params)

  def apply_fn(params, x, **kw):
    for layer, p in zip(layers, params):
      x = layer.apply_fn(p, x, **kw)
    return x

  def rule(k):
    for layer in layers:
      k = layer.kernel_fn(k)
    return k

  return _layer(rule, init_fn, apply_fn)


def FanOut(num: int) -> Layer:  # noqa: N802
  """``num`` copies of the input (a list)."""
  return Layer(lambda key, s: ([s] * num, ()), lambda p, x, **kw: [x] * num,
               lambda k: [k] * num)


def parallel(*layers: Layer) -> Layer:
  """Applies the ``i``-th layer to the ``i``-th of a list of inputs."""

  def init_fn(key, shapes):
    out = [layer.init_fn(k, s) for layer, k, s in
           zip(layers, jax.random.split(key, len(layers)), shapes)]
    return [o[0] for o in out], tuple(o[1] for o in out)

  return Layer(init_fn,
               lambda params, xs, **kw: [l.apply_fn(p, x, **kw)
                                         for l, p, x in zip(layers, params, xs)],
               lambda ks: [l.kernel_fn(k) for l, k in zip(layers, ks)])


def FanInSum() -> Layer:  # noqa: N802
  """Sum of a list of inputs; the kernel is the sum of the branches' kernels (independent
  branches)."""
  return Layer(lambda key, shapes: (shapes[0], ()), lambda p, xs, **kw: sum(xs[1:], xs[0]),
               lambda ks: Kernel(sum(k.nngp for k in ks), sum(k.ntk for k in ks)))
