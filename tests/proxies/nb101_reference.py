"""An independent NumPy (float64) forward pass of the NAS-Bench-101 model MeCo's authors score
(HamsterMimi/MeCo ``correlation/foresight/models/nasbench1.py::Network``, train-mode BN), over the
variables of ``jaxnas``'s ``NB101Model`` sliced to the discrete layers, recording every PyTorch
forward-hook event of that model's module tree in firing order (innermost module first):

* ``ConvBnRelu`` (stem, projections): ``Conv2d`` (conv output), ``BatchNorm2d``, ``ReLU``,
  ``Sequential``, ``ConvBnRelu`` (the last three on the ReLU output);
* a conv vertex (``Conv3x3BnRelu`` / ``Conv1x1BnRelu``): its ``ConvBnRelu``'s five, then itself;
* a max-pool vertex: ``MaxPool2d``, ``MaxPool3x3``; ``Cell``; the 2x2 ``MaxPool2d`` before a
  stack; ``Linear``; ``Network`` (the ``nn.ModuleList`` containers are never called).

Each event is ``(module class, tensor NHWC, tag)``; ``tag`` is the ``(site, block, part, call)``
under which ``jaxnas.proxies.meco`` draws that hook call's channel subset (None: the head, whose
tensors have one observation per channel), written out here per module by hand.
"""

import numpy as np

from jaxnas.spaces.nb101 import spec as S

EPS = 1e-5


def conv(x, k):
  """'same' convolution, stride 1, NHWC x HWIO."""
  r = k.shape[0] // 2
  xp = np.pad(x, ((0, 0), (r, r), (r, r), (0, 0)))
  h, w = x.shape[1:3]
  return sum(xp[:, i:i + h, j:j + w, :] @ k[i, j]
             for i in range(k.shape[0]) for j in range(k.shape[1]))


def batch_norm(x, scale, bias):
  m = x.mean(axis=(0, 1, 2))
  v = x.var(axis=(0, 1, 2))
  return (x - m) / np.sqrt(v + EPS) * scale + bias


def max_pool3(x):
  """3x3, stride 1, padding 1 with -inf (nn.MaxPool2d(3, 1, 1))."""
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
  h, w = x.shape[1:3]
  return np.max([xp[:, i:i + h, j:j + w, :] for i in range(3) for j in range(3)], axis=0)


def max_pool2(x):
  """2x2, stride 2 (even sizes)."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class Net:
  """``Net(params, spec, stem_channels, num_stacks, modules_per_stack).forward(x)``; hook events in
  ``self.events``. ``params``: an ``NB101Model`` parameter tree (full-width stacked cell layers)."""

  def __init__(self, params, spec, stem_channels, num_stacks, modules_per_stack):
    self.p = {k: _np(v) for k, v in params.items()}
    self.spec = S.prune(spec)
    self.c0, self.stacks, self.mods = stem_channels, num_stacks, modules_per_stack
    self.events = []

  def hook(self, kind, y, tag=None):
    self.events.append((kind, y, tag))

  def conv_bn_relu(self, x, k, sc, b, site, block, part, wrapper=None):
    c = conv(x, k)
    self.hook("Conv2d", c, (site + "_bn", block, part, 0))
    y = batch_norm(c, sc, b)
    self.hook("BatchNorm2d", y, (site + "_bn", block, part, 1))
    r = np.maximum(y, 0.0)
    names = ["ReLU", "Sequential", "ConvBnRelu"] + ([wrapper] if wrapper else [])
    for i, kind in enumerate(names):
      self.hook(kind, r, (site, block, part, i))
    return r

  def cell(self, x, name, c, block):
    m, v, ops = self.spec.array(), self.spec.num_vertices, self.spec.ops
    vc = S.compute_vertex_channels(x.shape[-1], c, m)
    slot = S.padded_slots(v)

    def layer(op, i, width, cin):
      w = self.p[f"{name}_{op}"]
      return (w["conv"]["kernel"][i][:, :, :cin, :width], w["bn"]["scale"][i][:width],
              w["bn"]["bias"][i][:width])

    outs = [x]
    for t in range(1, v - 1):
      fan_in = [outs[s][..., :vc[t]] for s in range(1, t) if m[s, t]]
      if m[0, t]:
        fan_in.append(self.conv_bn_relu(x, *layer("proj", slot[t] - 1, vc[t], x.shape[-1]),
                                        "proj", block, slot[t]))
      h = sum(fan_in[1:], fan_in[0])
      if ops[t] == "maxpool3x3":
        h = max_pool3(h)
        self.hook("MaxPool2d", h, ("pool", block, slot[t], 0))
        self.hook("MaxPool3x3", h, ("pool", block, slot[t], 1))
      else:
        op = "conv1x1" if ops[t] == "conv1x1-bn-relu" else "conv3x3"
        wrapper = "Conv1x1BnRelu" if op == "conv1x1" else "Conv3x3BnRelu"
        h = self.conv_bn_relu(h, *layer(op, slot[t] - 1, vc[t], vc[t]), "conv", block, slot[t],
                              wrapper)
      outs.append(h)
    cat = [outs[t] for t in range(1, v - 1) if m[t, v - 1]]
    out = np.concatenate(cat, axis=-1) if cat else None
    if m[0, v - 1]:
      p = self.conv_bn_relu(x, *layer("proj", S.MAX_VERTICES - 2, c, x.shape[-1]), "proj", block,
                            S.MAX_VERTICES - 1)
      out = p if out is None else out + p
    self.hook("Cell", out, ("cell", block, 0, 0))
    return out

  def forward(self, x):
    x = np.asarray(x, np.float64)
    st = self.p["stem"]
    x = self.conv_bn_relu(x, st["conv"]["kernel"], st["bn"]["scale"], st["bn"]["bias"], "stem", 0,
                          0)
    c = self.c0
    for s in range(self.stacks):
      if s:
        x = max_pool2(x)
        self.hook("MaxPool2d", x, ("downsample", 1 + s * self.mods, 0, 0))
        c *= 2
      for j in range(self.mods):
        x = self.cell(x, f"cell_{s}_{j}", c, 1 + s * self.mods + j)   # the stem is block 0
    logits = x.mean(axis=(1, 2)) @ self.p["classifier"]["kernel"] + self.p["classifier"]["bias"]
    self.hook("Linear", logits)
    self.hook("Network", logits)
    return logits


def _np(tree):
  if hasattr(tree, "items"):
    return {k: _np(v) for k, v in tree.items()}
  return np.asarray(tree, np.float64)
