"""Shared layers for the cell-based search spaces, as pure functions plus parameter declarations.

Layout is NHWC for activations and HWIO for convolution kernels. Every layer follows PyTorch's
numerics where the papers depend on them (methods-spec §1.1, §8.1):

* BatchNorm ``'batch'`` mode normalises with the biased batch variance and eps=1e-5, as
  ``torch.nn.BatchNorm2d`` in train mode; running statistics use momentum 0.1 and the unbiased
  variance, as PyTorch does. ``'running'`` uses the stored statistics (eval mode); ``'none'`` removes
  the layer.
* ``avg_pool_3x3`` excludes padding from the count (``count_include_pad=False``).
* The default initialiser is PyTorch's (``kaiming_uniform(a=sqrt(5))``, i.e. U(+-1/sqrt(fan_in)))
  for conv and dense weights and dense biases; BN scale 1, bias 0.

The layers are plain functions of arrays so that a network can pick one of them with
``jax.lax.switch`` on a traced op index (only the chosen branch runs inside ``lax.map``; under
``vmap`` the switch becomes a select over all branches).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn

from jaxnas.errors import JaxnasInputError, unknown

BN_EPS = 1e-5
BN_MOMENTUM = 0.1
BN_MODES = ("batch", "running", "none")
INITS = ("torch", "kaiming_normal")


def check_bn_mode(mode: str) -> str:
  """Returns ``mode`` if it is one of :data:`BN_MODES`; else raises :class:`JaxnasInputError`."""
  if mode not in BN_MODES:
    raise unknown("BatchNorm mode", mode, BN_MODES)
  return mode


_DRAW_DTYPE: contextvars.ContextVar = contextvars.ContextVar("jaxnas_draw_dtype", default=None)


@contextlib.contextmanager
def float32_draws():
  """Inside this context the weight initialisers draw float32 numbers even with 64-bit floats on.

  With ``jax_enable_x64`` an initialiser called without a dtype draws float64 numbers: other
  weights than the same key gives in float32. :mod:`jaxnas.engine` initialises every proxy's
  variables inside this context, so a float64 proxy (``freeflow``, ``ensemble``) sees the same
  network as a float32 one for the same (architecture, seed). Trace-time only (Python context).
  """
  token = _DRAW_DTYPE.set(jnp.float32)
  try:
    yield
  finally:
    _DRAW_DTYPE.reset(token)


_SAMPLES_VMAPPED: contextvars.ContextVar = contextvars.ContextVar("jaxnas_samples_vmapped",
                                                                  default=1)


@contextlib.contextmanager
def samples_vmapped(n: int):
  """While tracing inside, the network runs under a ``vmap`` over ``n`` samples, one each.

  The per-sample routes of :mod:`jaxnas.ntk.per_sample` (``'shares'``, ``'independent'``) apply
  the network to one sample at a time under ``vmap``: a layer then sees ``1/n`` of the batch it
  really computes. Layers that choose an implementation by size (the DARTS depthwise convolution)
  multiply what they see by :func:`vmapped_samples`. Trace-time only (Python context).
  """
  token = _SAMPLES_VMAPPED.set(int(n))
  try:
    yield
  finally:
    _SAMPLES_VMAPPED.reset(token)


def vmapped_samples() -> int:
  """The ``n`` of the enclosing :func:`samples_vmapped` (1 outside one)."""
  return _SAMPLES_VMAPPED.get()


def _draws(init):
  """``init(key, shape, dtype)`` that honours :func:`float32_draws`."""
  def wrapped(key, shape, dtype=None):
    forced = _DRAW_DTYPE.get()
    if forced is not None:
      return init(key, shape, forced)
    return init(key, shape) if dtype is None else init(key, shape, dtype)
  return wrapped


def kernel_init(init: str, stack_dims: int = 0):
  """Weight initialiser by name: ``'torch'`` (PyTorch default) or ``'kaiming_normal'`` (fan-in).

  ``stack_dims`` leading axes index independent layers (stacked parameters): they are excluded from
  the fan computation, so every slice has the distribution of one layer.
  """
  batch = tuple(range(stack_dims))
  if init == "torch":
    return _draws(nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform",
                                                   batch_axis=batch))
  if init == "kaiming_normal":
    return _draws(nn.initializers.variance_scaling(2.0, "fan_in", "normal", batch_axis=batch))
  raise unknown("initialiser", init, INITS)


def torch_bias_init(fan_in: int):
  """PyTorch's default bias initialiser U(+-1/sqrt(fan_in))."""
  return _torch_bias_init(fan_in)


def _torch_bias_init(fan_in: int):
  bound = 1.0 / max(fan_in, 1) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return _draws(init)


# ------------------------------------------------------------------ pure layers


def conv2d(x, kernel, stride: int = 1, padding: int = 0, dilation: int = 1,
           groups: int = 1):
  """2-D convolution, NHWC x HWIO -> NHWC, symmetric zero padding as PyTorch's ``padding=p``."""
  return jax.lax.conv_general_dilated(
      x, kernel.astype(x.dtype), window_strides=(stride, stride),
      padding=((padding, padding), (padding, padding)),
      rhs_dilation=(dilation, dilation),
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=groups)


def _shifted_dots(x, kernel, stride: int, padding: int):
  """The same convolution as a sum of k*k strided slices times ``kernel[i, j]`` (dense, no
  dilation or groups). Its transposes are pads, slices and dots."""
  k = kernel.shape[0]
  b, h, w, c = x.shape
  ho = (h + 2 * padding - k) // stride + 1
  wo = (w + 2 * padding - k) // stride + 1
  xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  out = None
  for i in range(k):
    for j in range(k):
      s = jax.lax.slice(xp, (0, i, j, 0), (b, i + (ho - 1) * stride + 1, j + (wo - 1) * stride + 1, c),
                        (1, stride, stride, 1))
      t = jnp.einsum("bhwc,cd->bhwd", s, kernel[i, j].astype(x.dtype))
      out = t if out is None else out + t
  return out


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def conv2d_nested(x, kernel, stride: int = 1, padding: int = 0):
  """:func:`conv2d` (dense) for use inside ``lax.switch`` / ``lax.scan`` bodies.

  Same values and derivatives as :func:`conv2d`, but the tangent map is written as shifted dots, so
  reverse mode transposes it into pads, slices and matrix products. XLA:CPU runs the backward
  convolutions that JAX derives from ``conv_general_dilated`` 5-12x slower inside nested
  computations (conditional branches, loop bodies) than at top level; this form avoids them.
  Forward-mode (``jvp``) still works.
  """
  return conv2d(x, kernel, stride, padding)


@conv2d_nested.defjvp
def _conv2d_nested_jvp(stride, padding, primals, tangents):
  x, kernel = primals
  dx, dk = tangents
  y = conv2d_nested(x, kernel, stride, padding)
  return y, _shifted_dots(dx, kernel, stride, padding) + _shifted_dots(x, dk, stride, padding)


class BNState(NamedTuple):
  """Running statistics of one BatchNorm layer (per channel)."""
  mean: jax.Array
  var: jax.Array


def batch_norm(x, scale: Optional[jax.Array], bias: Optional[jax.Array],
               state: Optional[BNState], mode: str, eps: float = BN_EPS):
  """BatchNorm over all but the channel axis.

  ``y = (x - mu) / sqrt(var + eps) * scale + bias`` where (mu, var) are the batch mean and biased
  batch variance (``mode='batch'``) or the running statistics (``mode='running'``).

  Returns:
    ``(y, new_state)``: ``new_state`` is the momentum-updated running statistics in batch mode (with
    the unbiased variance, as PyTorch) and ``state`` unchanged otherwise.
  """
  if mode == "none":
    return x, state
  axes = tuple(range(x.ndim - 1))
  if mode == "batch":
    mean = jnp.mean(x, axis=axes)
    var = jnp.mean(jnp.square(x - mean), axis=axes)
    new_state = state
    if state is not None:
      n = x.size // x.shape[-1]
      unbiased = var * (n / max(n - 1, 1))
      new_state = BNState(
          (1 - BN_MOMENTUM) * state.mean + BN_MOMENTUM * mean.astype(state.mean.dtype),
          (1 - BN_MOMENTUM) * state.var + BN_MOMENTUM * unbiased.astype(state.var.dtype))
  elif mode == "running":
    if state is None:
      raise JaxnasInputError("BatchNorm mode 'running' needs stored statistics: pass the "
                             "'batch_stats' collection in the variables")
    mean, var, new_state = state.mean.astype(x.dtype), state.var.astype(x.dtype), state
  else:
    raise unknown("BatchNorm mode", mode, BN_MODES)
  y = (x - mean) * jax.lax.rsqrt(var + eps)
  if scale is not None:
    y = y * scale.astype(x.dtype) + bias.astype(x.dtype)
  return y, new_state


def avg_pool_3x3(x):
  """3x3 average pool, stride 1, padding 1, ``count_include_pad=False``."""
  pads = ((0, 0), (1, 1), (1, 1), (0, 0))
  s = jax.lax.reduce_window(x, np.zeros((), x.dtype), jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1),
                            pads)
  ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
  n = jax.lax.reduce_window(ones, np.zeros((), x.dtype), jax.lax.add, (1, 3, 3, 1),
                            (1, 1, 1, 1), pads)
  return s / n


def avg_pool_2x2(x):
  """2x2 average pool with stride 2 (floor), as ``nn.AvgPool2d(2, 2)``."""
  s = jax.lax.reduce_window(x, np.zeros((), x.dtype), jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1),
                            "VALID")
  return s / 4.0


def global_avg_pool(x):
  """Mean over the spatial axes: ``(B, H, W, C)`` -> ``(B, C)``."""
  return jnp.mean(x, axis=(1, 2))


# ------------------------------------------------------------ parameter declarations


class ConvKernel(nn.Module):
  """Declares a conv kernel ``stack + (k, k, in/groups, out)``, optional bias and gate; returns
  ``(kernel, bias, gate)``.

  Convs are declared apart from their use so that a network can choose among them with
  ``lax.switch`` and stack identical layers (``stack`` leading axes, each slice initialised as one
  layer). Variables are named ``kernel`` / ``bias`` as in ``flax.linen.Conv``; with ``gate_batch=B``
  a ``gates/gate`` variable of ones ``stack + (B, out)`` is declared beside them (see
  ``NB201Net.gates``).
  """
  in_features: int
  features: int
  kernel_size: int
  use_bias: bool = False
  groups: int = 1
  weight_init: str = "torch"
  stack: tuple = ()
  gate_batch: int = 0

  @nn.compact
  def __call__(self):
    k, st = self.kernel_size, tuple(self.stack)
    kernel = self.param("kernel", kernel_init(self.weight_init, len(st)),
                        st + (k, k, self.in_features // self.groups, self.features))
    bias = None
    if self.use_bias:
      bias = self.param("bias", _torch_bias_init(k * k * self.in_features // self.groups),
                        st + (self.features,))
    gate = None
    if self.gate_batch:
      gate = self.variable("gates", "gate", jnp.ones, st + (self.gate_batch, self.features)).value
    return kernel, bias, gate


class BNVars(nn.Module):
  """Declares a BatchNorm's affine parameters (``scale``, ``bias``) and running statistics.

  Returns ``(scale, bias, state)``; ``scale``/``bias`` are None when ``affine=False``, and
  ``state`` is None when the ``batch_stats`` collection is absent (proxies that never track
  running averages need not carry it). ``stack`` leading axes index stacked layers.
  """
  features: int
  affine: bool = True
  stack: tuple = ()

  @nn.compact
  def __call__(self):
    shape = tuple(self.stack) + (self.features,)
    scale = bias = None
    if self.affine:
      scale = self.param("scale", nn.initializers.ones, shape)
      bias = self.param("bias", nn.initializers.zeros, shape)
    state = None
    if self.is_initializing() or self.has_variable("batch_stats", "mean"):
      mean = self.variable("batch_stats", "mean", jnp.zeros, shape)
      var = self.variable("batch_stats", "var", jnp.ones, shape)
      state = BNState(mean.value, var.value)
    return scale, bias, state

  def tracking(self) -> bool:
    """Whether running statistics should be updated in this call."""
    return (self.is_mutable_collection("batch_stats") and not self.is_initializing()
            and self.has_variable("batch_stats", "mean"))

  def write(self, state: Optional[BNState]):
    """Stores updated running statistics when ``batch_stats`` is mutable."""
    if state is not None and self.tracking():
      self.put_variable("batch_stats", "mean", state.mean)
      self.put_variable("batch_stats", "var", state.var)


class Dense(nn.Module):
  """Linear layer ``y = x W + b`` with PyTorch's default initialisation (optional output gate)."""
  features: int
  weight_init: str = "torch"
  gates: bool = False

  @nn.compact
  def __call__(self, x):
    w = self.param("kernel", kernel_init(self.weight_init), (x.shape[-1], self.features))
    b = self.param("bias", _torch_bias_init(x.shape[-1]), (self.features,))
    y = x @ w.astype(x.dtype) + b.astype(x.dtype)
    if self.gates:
      y = y * self.variable("gates", "gate", jnp.ones, (x.shape[0], self.features)).value
    return y
