"""Convolutions for the ``'shares'`` route: one per-sample parameter copy, all copies equal.

HNAS' per-sample shares (:mod:`jaxnas.ntk.per_sample`) give every sample ``i`` its own copy
``theta_i`` of the parameters and run the batch under ``vmap`` over samples. Written plainly, each
sample then convolves with "its own" kernel: XLA gets ``B`` convolutions of one image each (a
grouped convolution, or ``B`` small matrix products per kernel tap inside ``lax.switch`` bodies),
about 5x the time of the batched convolution on this CPU. Since the copies are equal in value
(broadcasts of one ``theta``), only the *gradient* needs them apart:

* forward ``y_i = conv(x_i, k_0)``: the batch through one kernel;
* input cotangent ``dx_i = conv^T(g_i, k_0)``: the batch through one transposed kernel;
* kernel cotangent ``dk_i[a, b] = sum_{h,w} x_i[h s + a, w s + b, :]^T g_i[h, w, :]``
  (``x`` zero-padded, ``s`` the stride): sample ``i``'s own share, ``k*k`` batched matrix products
  of the shifted input with the cotangent.

:func:`conv2d` and :func:`conv2d_nested` do this with ``jax.custom_batching.custom_vmap`` rules
inside a ``jax.custom_vjp``; :func:`kernel_copies_equal` installs them in
:mod:`jaxnas.spaces.ops` while a shares trace runs. Outside a ``vmap`` over samples they are the
plain convolutions. Dilated and grouped convolutions keep the plain route; on CPU the DARTS
depthwise convolutions take their shifted form there (elementwise products with per-channel
weights, which per-sample kernels do not slow down: :func:`jaxnas.spaces.darts.layers.auto_impl`
counts the samples of the route). Values equal the plain route up to float32 summation order
(``tests/ntk/test_per_sample.py``).

Valid only where a kernel batched over the samples is a stack of equal copies: the rules read
copy 0. They take that shortcut only while :func:`kernel_copies_equal` is active *and* the batched
axis has the samples' size; any other batching of these convolutions (a jitted block traced
here and reused elsewhere, a ``vmap`` over architectures) runs the exact per-copy route.
"""

from __future__ import annotations

import contextlib
import functools
import threading

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

from jaxnas.spaces import ops

_CONV2D = ops.conv2d
_CONV2D_NESTED = ops.conv2d_nested
_LOCK = threading.RLock()
_STATE = threading.local()


def _copies(n: int) -> bool:
  """Whether a batching rule over an axis of size ``n`` may read copy 0 (module docstring)."""
  return getattr(_STATE, "samples", None) == n


def _merge(a):
  """``(S, n, ...)`` (a vmapped per-sample batch of ``n``) -> ``(S * n, ...)``."""
  return a.reshape((-1,) + a.shape[2:])


def _split(a, n):
  return a.reshape((n, -1) + a.shape[1:])


def _flat_batch(a, batched, n):
  return _merge(a) if batched else _merge(jnp.broadcast_to(a, (n,) + a.shape))


def kernel_shares(x, g, k: int, stride: int, padding: int):
  """``(B, k, k, C_in, C_out)``: sample ``b``'s gradient of ``<g_b, conv(x_b, K)>`` w.r.t. ``K``."""
  b, _, _, c = x.shape
  ho, wo = g.shape[1], g.shape[2]
  xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  taps = []
  for i in range(k):
    row = []
    for j in range(k):
      s = jax.lax.slice(xp, (0, i, j, 0),
                        (b, i + (ho - 1) * stride + 1, j + (wo - 1) * stride + 1, c),
                        (1, stride, stride, 1))
      row.append(jnp.einsum("bhwc,bhwd->bcd", s, g.astype(s.dtype)))
    taps.append(jnp.stack(row, 1))
  return jnp.stack(taps, 1)


@functools.lru_cache(maxsize=None)
def _conv(stride: int, padding: int, nested: bool):
  """The shares-aware convolution for one (stride, padding), plain or for nested bodies."""
  if nested:
    impl = lambda x, k: ops._shifted_dots(x, k, stride, padding)  # noqa: E731
  else:
    impl = lambda x, k: _CONV2D(x, k, stride, padding)  # noqa: E731

  @custom_vmap
  def forward(x, k):
    return impl(x, k)

  def exact(fn, batched, *args):
    axes = tuple(0 if b else None for b in batched)
    return jax.vmap(fn, in_axes=axes)(*args), True

  @forward.def_vmap
  def _forward_rule(n, batched, x, k):
    xb, kb = batched
    if kb and not _copies(n):
      return exact(impl, batched, x, k)
    k0 = k[0] if kb else k
    if not xb:
      return impl(x, k0), False
    return _split(impl(_merge(x), k0), n), True

  @custom_vmap
  def input_grad(x, k, g):
    return jax.vjp(lambda x_: impl(x_, k), x)[1](g)[0]

  @input_grad.def_vmap
  def _input_rule(n, batched, x, k, g):
    _, kb, _ = batched
    if kb and not _copies(n):
      return exact(lambda x_, k_, g_: jax.vjp(lambda a: impl(a, k_), x_)[1](g_)[0],
                   batched, x, k, g)
    k0 = k[0] if kb else k
    xm = _flat_batch(x, batched[0], n)
    dx = jax.vjp(lambda x_: impl(x_, k0), xm)[1](_flat_batch(g, batched[2], n))[0]
    return _split(dx, n), True

  @custom_vmap
  def kernel_grad(x, k, g):
    return jax.vjp(lambda k_: impl(x, k_), k)[1](g)[0]

  @kernel_grad.def_vmap
  def _kernel_rule(n, batched, x, k, g):
    if batched[1] and not _copies(n):
      return exact(lambda x_, k_, g_: jax.vjp(lambda a: impl(x_, a), k_)[1](g_)[0],
                   batched, x, k, g)
    k0 = k[0] if batched[1] else k
    dk = kernel_shares(_flat_batch(x, batched[0], n), _flat_batch(g, batched[2], n),
                       k0.shape[0], stride, padding)
    return dk.astype(k0.dtype), True

  @jax.custom_vjp
  def conv(x, k):
    return forward(x, k)

  def conv_fwd(x, k):
    return forward(x, k), (x, k)

  def conv_bwd(res, g):
    x, k = res
    return input_grad(x, k, g), kernel_grad(x, k, g)

  conv.defvjp(conv_fwd, conv_bwd)
  return conv


def conv2d(x, kernel, stride: int = 1, padding: int = 0, dilation: int = 1, groups: int = 1):
  """:func:`jaxnas.spaces.ops.conv2d` for equal per-sample kernel copies (module docstring)."""
  if dilation != 1 or groups != 1 or kernel.shape[0] != kernel.shape[1]:
    return _CONV2D(x, kernel, stride, padding, dilation, groups)
  return _conv(int(stride), int(padding), False)(x, kernel.astype(x.dtype))


def conv2d_nested(x, kernel, stride: int = 1, padding: int = 0):
  """:func:`jaxnas.spaces.ops.conv2d_nested` for equal per-sample kernel copies."""
  if kernel.shape[0] != kernel.shape[1]:
    return _CONV2D_NESTED(x, kernel, stride, padding)
  return _conv(int(stride), int(padding), True)(x, kernel.astype(x.dtype))


@contextlib.contextmanager
def kernel_copies_equal(samples: int):
  """While tracing, :mod:`jaxnas.spaces.ops`' convolutions treat a kernel batched over an axis of
  ``samples`` entries as equal copies (module docstring); enter it around the whole gradient
  (the backward rules are batched while the gradient is transposed). Networks look the
  convolutions up at call time."""
  with _LOCK:
    saved = ops.conv2d, ops.conv2d_nested, getattr(_STATE, "samples", None)
    ops.conv2d, ops.conv2d_nested, _STATE.samples = conv2d, conv2d_nested, int(samples)
    try:
      yield
    finally:
      ops.conv2d, ops.conv2d_nested, _STATE.samples = saved
