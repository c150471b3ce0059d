"""An independent NB201 forward pass for the proxy tests (AZ-NAS, MeCo, SWAP).

Written from the network's description (methods-spec §1.1) with plain ``jax.lax`` / ``jnp``
operations, not from :mod:`jaxnas.spaces.nb201.net`: PyTorch train-mode BatchNorm, ReLU -> Conv ->
BN ops, 3x3 average pool without the padding in the count, ResNet reduction blocks. It reads the
*shared* parameter tree of ``NB201Net`` (cell parameters stacked ``(N, 6, ...)``) and records what
PyTorch forward hooks would see in the zero-cost-nas NB201 model (methods-spec §11.3): one event
per module call, ``(module kind, output)``, in NHWC.
"""

import jax
import jax.numpy as jnp
import numpy as np

EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NONE, SKIP, CONV1, CONV3, POOL = range(5)
EPS = 1e-5


def conv(x, k, stride=1, pad=0):
  return jax.lax.conv_general_dilated(x, k, (stride, stride), ((pad, pad), (pad, pad)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def batch_norm(x, scale, bias):
  m = jnp.mean(x, axis=(0, 1, 2))
  v = jnp.mean(jnp.square(x - m), axis=(0, 1, 2))
  return (x - m) / jnp.sqrt(v + EPS) * scale + bias


def avg_pool_3x3(x):
  h, w = x.shape[1:3]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  s = sum(xp[:, i:i + h, j:j + w] for i in range(3) for j in range(3))
  ones = np.pad(np.ones((h, w)), 1)
  count = sum(ones[i:i + h, j:j + w] for i in range(3) for j in range(3))
  return s / count[None, :, :, None]


def avg_pool_2x2(x):
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class Net:
  """The NB201 network of ``arch`` on the shared ``params`` of ``NB201Net(C, N)``.

  ``forward(x)`` returns the logits and fills ``events`` (``(kind, tensor)`` per PyTorch hook
  event), ``relus`` (every ``nn.ReLU`` output) and ``blocks`` (stem output, then every cell and
  reduction output, in order). ``block_fn(l)`` is block ``l``'s own function (``l >= 1``).
  """

  def __init__(self, params, arch, N):
    self.p, self.arch, self.N = params, [int(a) for a in arch], N
    self.events, self.relus, self.blocks = [], [], []
    self._record = True

  def rec(self, kind, y):
    if self._record:
      self.events.append((kind, y))

  def relu_conv_bn(self, x, k, scale, bias, stride=1, pad=0):
    r = jax.nn.relu(x)
    if self._record:
      self.relus.append(r)
    self.rec("ReLU", r)
    h = conv(r, k, stride, pad)
    self.rec("Conv2d", h)
    y = batch_norm(h, scale, bias)
    for kind in ("BatchNorm2d", "Sequential", "ReLUConvBN"):
      self.rec(kind, y)
    return y

  def cell(self, x, stage, i):
    p = self.p[f"cells_{stage}"]
    nodes = [x]
    for to in (1, 2, 3):
      ins = []
      for e, (t, frm) in enumerate(EDGES):
        if t != to:
          continue
        op, h = self.arch[e], nodes[frm]
        if op == NONE:
          y = h * 0.0
          self.rec("Zero", y)
        elif op == SKIP:
          y = h
          self.rec("Identity", y)
        elif op == POOL:
          y = avg_pool_3x3(h)
          self.rec("AvgPool2d", y)
          self.rec("POOLING", y)
        else:
          tag, pad = ("1x1", 0) if op == CONV1 else ("3x3", 1)
          y = self.relu_conv_bn(h, p["conv" + tag]["kernel"][i, e], p["bn" + tag]["scale"][i, e],
                                p["bn" + tag]["bias"][i, e], pad=pad)
        ins.append(y)
      nodes.append(sum(ins))
    self.rec("SearchCell", nodes[3])
    return nodes[3]

  def reduction(self, x, stage):
    p = self.p[f"reduction_{stage}"]
    a = self.relu_conv_bn(x, p["conv_a"]["kernel"], p["bn_a"]["scale"], p["bn_a"]["bias"], 2, 1)
    b = self.relu_conv_bn(a, p["conv_b"]["kernel"], p["bn_b"]["scale"], p["bn_b"]["bias"], 1, 1)
    q = avg_pool_2x2(x)
    self.rec("AvgPool2d", q)
    r = conv(q, p["conv_shortcut"]["kernel"])
    self.rec("Conv2d", r)
    self.rec("Sequential", r)
    out = r + b
    self.rec("reduction", out)
    return out

  def block_fn(self, l):
    """Block ``l``'s function ``h -> output`` (no recording)."""
    s, j = divmod(l - 1, self.N + 1)
    def fn(h):
      self._record = False
      try:
        return self.reduction(h, s + 1) if j == self.N else self.cell(h, s, j)
      finally:
        self._record = True
    return fn

  def forward(self, x):
    p = self.p
    h = conv(x, p["conv_stem"]["kernel"], 1, 1)
    self.rec("Conv2d", h)
    h = batch_norm(h, p["bn_stem"]["scale"], p["bn_stem"]["bias"])
    for kind in ("BatchNorm2d", "Sequential", "stem"):
      self.rec(kind, h)
    self.blocks.append(h)
    for s in range(3):
      if s > 0:
        h = self.reduction(h, s)
        self.blocks.append(h)
      for i in range(self.N):
        h = self.cell(h, s, i)
        self.blocks.append(h)
      self.rec("Sequential", h)       # the stage's nn.Sequential
    h = batch_norm(h, p["bn_head"]["scale"], p["bn_head"]["bias"])
    self.rec("BatchNorm2d", h)
    h = jax.nn.relu(h)
    self.relus.append(h)
    self.rec("ReLU", h)
    self.rec("Sequential", h)         # lastact
    pooled = jnp.mean(h, axis=(1, 2))
    self.rec("AdaptiveAvgPool2d", pooled[:, None, None, :])
    self.rec("top", pooled)
    logits = pooled @ p["classifier"]["kernel"] + p["classifier"]["bias"]
    self.rec("Linear", logits)
    self.rec("NAS201Model", logits)
    return logits
