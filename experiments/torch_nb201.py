"""The NAS-Bench-201 network and the shared zero-cost proxies in PyTorch, for
``experiments/bench_vs_pytorch.py`` only (runs in a separate environment with ``torch``; the
jaxnas library never imports it).

Written from the network's description (methods-spec §1.1) and jaxnas' own definitions
(``jaxnas/spaces/nb201/net.py``, ``jaxnas/spaces/nb201/space.py``, ``jaxnas/proxies/*.py``), so that both
sides compute the same quantity on the same network:

* network: stem Conv3x3 (no bias) + BN; three stages of ``N`` cells at C, 2C, 4C, joined by ResNet
  reduction blocks (ReLU-Conv3x3(s2)-BN -> ReLU-Conv3x3-BN, plus AvgPool2x2-Conv1x1 shortcut);
  cell edges ``none`` / ``skip_connect`` / ``nor_conv_1x1`` / ``nor_conv_3x3`` (ReLU-Conv-BN) /
  ``avg_pool_3x3`` (``count_include_pad=False``); a node is the sum of its incoming edges, a node
  that no edge reaches is zero (and an op on it still runs, as in jaxnas); head BN-ReLU-global
  average pool-Linear. BN in train mode (batch statistics, eps 1e-5). Only the chosen ops exist
  (the discrete network). The synflow variant (``VARIANTS['synflow']``) is the zero-cost-nas one
  jaxnas uses: no BN in stem, cells and head, reductions keep theirs, cell convs with a bias.
* proxies: :data:`PROXIES`, each documented with the jaxnas definition it follows.

Weights: a model gets PyTorch's own default initialisation (``build``), or jaxnas' weights of the
same architecture (``load_jax``: the flat ``params/...`` arrays of
``jaxnas.spaces.nb201.discrete_params``; conv kernels HWIO -> OIHW, dense (in, out) ->
(out, in)).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NONE, SKIP, CONV1, CONV3, POOL = range(5)
#: (to_node, from_node) of each cell edge, in the order of the arch string / op-index array.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

#: Network variants: ``bn`` (stem, cell and head BN), ``cell_affine``, ``cell_bias`` (cell conv
#: bias); the reductions always keep their affine BN.
VARIANTS = {
    "default": dict(bn=True, cell_affine=True, cell_bias=False),
    # jaxnas.proxies.synflow.NO_BN: bn='none', reduction_bn='batch', cell_bn_affine=False,
    # cell_conv_bias=True
    "synflow": dict(bn=False, cell_affine=False, cell_bias=True),
}


class ReLUConvBN(nn.Module):
  def __init__(self, cin, cout, k, stride, padding, bias, bn, affine=True):
    super().__init__()
    self.relu = nn.ReLU(inplace=False)
    self.conv = nn.Conv2d(cin, cout, k, stride, padding, bias=bias)
    self.bn = nn.BatchNorm2d(cout, affine=affine) if bn else None

  def forward(self, x):
    h = self.conv(self.relu(x))
    return h if self.bn is None else self.bn(h)


class Cell(nn.Module):
  def __init__(self, C, arch, bn, affine, bias):
    super().__init__()
    self.arch = tuple(int(a) for a in arch)
    self.edges = nn.ModuleDict()
    for e, op in enumerate(self.arch):
      if op == CONV1:
        self.edges[str(e)] = ReLUConvBN(C, C, 1, 1, 0, bias, bn, affine)
      elif op == CONV3:
        self.edges[str(e)] = ReLUConvBN(C, C, 3, 1, 1, bias, bn, affine)
      elif op == POOL:
        self.edges[str(e)] = nn.AvgPool2d(3, 1, 1, count_include_pad=False)

  def forward(self, x):
    nodes = [x, None, None, None]
    for e, ((to, frm), op) in enumerate(zip(EDGES, self.arch)):
      if op == NONE:   # contributes zeros
        continue
      inp = nodes[frm] if nodes[frm] is not None else torch.zeros_like(x)
      y = inp if op == SKIP else self.edges[str(e)](inp)
      nodes[to] = y if nodes[to] is None else nodes[to] + y
    return nodes[3] if nodes[3] is not None else torch.zeros_like(x)


class Reduction(nn.Module):
  def __init__(self, cin, cout):
    super().__init__()
    self.a = ReLUConvBN(cin, cout, 3, 2, 1, False, True)
    self.b = ReLUConvBN(cout, cout, 3, 1, 1, False, True)
    self.pool = nn.AvgPool2d(2, 2)
    self.shortcut = nn.Conv2d(cin, cout, 1, bias=False)

  def forward(self, x):
    return self.b(self.a(x)) + self.shortcut(self.pool(x))


class NB201(nn.Module):
  """The discrete NB201 network of ``arch`` (6 op indices), NCHW input."""

  def __init__(self, arch, C=16, N=5, num_classes=10, bn=True, cell_affine=True,
               cell_bias=False, in_channels=3):
    super().__init__()
    self.arch, self.N = tuple(int(a) for a in arch), N
    self.stem_conv = nn.Conv2d(in_channels, C, 3, 1, 1, bias=False)
    self.stem_bn = nn.BatchNorm2d(C) if bn else None
    self.stages = nn.ModuleList()
    self.reductions = nn.ModuleList()
    c = C
    for s in range(3):
      if s > 0:
        self.reductions.append(Reduction(c, 2 * c))
        c *= 2
      self.stages.append(nn.ModuleList(Cell(c, self.arch, bn, cell_affine, cell_bias)
                                       for _ in range(N)))
    self.head_bn = nn.BatchNorm2d(c) if bn else None
    self.head_relu = nn.ReLU(inplace=False)
    self.gap = nn.AdaptiveAvgPool2d(1)
    self.classifier = nn.Linear(c, num_classes)

  def forward(self, x):
    h = self.stem_conv(x)
    if self.stem_bn is not None:
      h = self.stem_bn(h)
    for s in range(3):
      if s > 0:
        h = self.reductions[s - 1](h)
      for cell in self.stages[s]:
        h = cell(h)
    if self.head_bn is not None:
      h = self.head_bn(h)
    h = self.gap(self.head_relu(h)).flatten(1)
    return self.classifier(h)

  def named_layers(self):
    """``[(jaxnas discrete-params name, module)]`` of every conv, BN and dense layer."""
    out = [("conv_stem", self.stem_conv)]
    if self.stem_bn is not None:
      out.append(("bn_stem", self.stem_bn))
    for s in range(3):
      if s > 0:
        r, p = self.reductions[s - 1], f"reduction_{s}"
        out += [(p + "/conv_a", r.a.conv), (p + "/bn_a", r.a.bn), (p + "/conv_b", r.b.conv),
                (p + "/bn_b", r.b.bn), (p + "/conv_shortcut", r.shortcut)]
      for i, cell in enumerate(self.stages[s]):
        for e, op in enumerate(cell.arch):
          if op in (CONV1, CONV3):
            tag = "1x1" if op == CONV1 else "3x3"
            m = cell.edges[str(e)]
            out.append((f"cells_{s}/cell_{i}_edge_{e}_conv{tag}", m.conv))
            if m.bn is not None:
              out.append((f"cells_{s}/cell_{i}_edge_{e}_bn{tag}", m.bn))
    if self.head_bn is not None:
      out.append(("bn_head", self.head_bn))
    out.append(("classifier", self.classifier))
    return out


def build(arch, C, N, num_classes=10, variant="default"):
  """The model of ``arch`` with PyTorch's default initialisation, in train mode."""
  return NB201(arch, C, N, num_classes, **VARIANTS[variant]).train()


@torch.no_grad()
def load_jax(model: NB201, flat: dict):
  """Copies jaxnas' weights (``flat['params/<layer>/<leaf>']``, discrete layout) into ``model``.

  Raises if a layer of the model has no weights in ``flat`` or ``flat`` holds params the model
  does not use, so both sides are known to be the same network.
  """
  used, n_set = set(), 0
  dtype = next(model.parameters()).dtype

  def take(key):
    used.add(key)
    return torch.from_numpy(np.ascontiguousarray(flat[key])).to(dtype)

  for name, m in model.named_layers():
    p = "params/" + name
    if isinstance(m, nn.Conv2d):
      m.weight.copy_(take(p + "/kernel").permute(3, 2, 0, 1))
      n_set += 1
      if m.bias is not None:
        m.bias.copy_(take(p + "/bias"))
        n_set += 1
    elif isinstance(m, nn.Linear):
      m.weight.copy_(take(p + "/kernel").T)
      m.bias.copy_(take(p + "/bias"))
      n_set += 2
    elif isinstance(m, nn.BatchNorm2d):
      if m.affine:
        m.weight.copy_(take(p + "/scale"))
        m.bias.copy_(take(p + "/bias"))
        n_set += 2
  extra = sorted(k for k in flat if k.startswith("params/") and k not in used)
  n_params = sum(1 for _ in model.parameters())
  if extra or n_set != n_params:
    raise ValueError(f"weights do not match the model: {n_set} of {n_params} tensors set, "
                     f"unused: {extra[:5]}")
  return model


def _weights(model):
  """The conv and dense weights (zero-cost-nas: Conv2d / Linear ``.weight``), model order."""
  return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


# ------------------------------------------------------------------ proxies
# Each takes (model, x NCHW, y) and returns a float. The model is fresh and in train mode.

def p_params(model, x, y):
  """jaxnas ``params``: parameters of the discrete network (BN scale/bias included, running
  statistics not), in millions."""
  return sum(p.numel() for p in model.parameters()) / 1e6


@torch.no_grad()
def p_flops(model, x, y):
  """jaxnas ``flops`` (``nb201`` convention), counted with forward hooks on one image: conv and
  dense MACs, biases 1 per output element, ReLU 1 and BN 2 (affine) or 1 per element, average
  pooling k^2 per output element, global pooling 1 per input element; in millions."""
  total = [0]

  def hook(m, inp, out):
    i = inp[0]
    if isinstance(m, nn.Conv2d):
      k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
      total[0] += out.numel() * k + (out.numel() if m.bias is not None else 0)
    elif isinstance(m, nn.Linear):
      total[0] += m.in_features * out.numel() + (out.numel() if m.bias is not None else 0)
    elif isinstance(m, nn.BatchNorm2d):
      total[0] += (2 if m.affine else 1) * i.numel()
    elif isinstance(m, nn.ReLU):
      total[0] += i.numel()
    elif isinstance(m, nn.AvgPool2d):
      k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
      total[0] += k * k * out.numel()
    elif isinstance(m, nn.AdaptiveAvgPool2d):
      total[0] += i.numel()

  hs = [m.register_forward_hook(hook) for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.ReLU, nn.AvgPool2d,
                          nn.AdaptiveAvgPool2d))]
  try:
    model(x[:1])
  finally:
    for h in hs:
      h.remove()
  return total[0] / 1e6


def p_l2_norm(model, x, y):
  """jaxnas ``l2_norm``: ``sum_l ||W_l||_F`` over conv and dense weights."""
  with torch.no_grad():
    return float(sum(torch.linalg.vector_norm(w) for w in _weights(model)))


def _loss_grads(model, x, y, create_graph=False):
  ws = _weights(model)
  loss = F.cross_entropy(model(x), y)
  return ws, torch.autograd.grad(loss, ws, create_graph=create_graph, allow_unused=True)


def _zeros_for_none(ws, gs):
  return [torch.zeros_like(w) if g is None else g for w, g in zip(ws, gs)]


def p_grad_norm(model, x, y):
  """jaxnas ``grad_norm``: ``sum_l ||dL_CE/dW_l||_F`` (sum of per-layer norms)."""
  ws, gs = _loss_grads(model, x, y)
  return float(sum(torch.linalg.vector_norm(g) for g in _zeros_for_none(ws, gs)))


def p_snip(model, x, y):
  """jaxnas ``snip``: ``sum_W |W * dL_CE/dW|``."""
  ws, gs = _loss_grads(model, x, y)
  with torch.no_grad():
    return float(sum((w * g).abs().sum() for w, g in zip(ws, _zeros_for_none(ws, gs))))


def p_plain(model, x, y):
  """jaxnas ``plain``: ``sum_W W * dL_CE/dW`` (signed)."""
  ws, gs = _loss_grads(model, x, y)
  with torch.no_grad():
    return float(sum((w * g).sum() for w, g in zip(ws, _zeros_for_none(ws, gs))))


def p_grasp(model, x, y):
  """jaxnas ``grasp``: ``-sum_W W * (H g)``, ``g = dL_CE/dW`` held constant, ``H g`` by double
  backpropagation of ``<dL/dW, g>`` (T = 1, weights only)."""
  ws, gs = _loss_grads(model, x, y, create_graph=True)
  z = sum((g * g.detach()).sum() for g in gs if g is not None)
  hg = torch.autograd.grad(z, ws, allow_unused=True)
  with torch.no_grad():
    return float(-sum((w * h).sum() for w, h in zip(ws, hg) if h is not None))


def p_fisher(model, x, y):
  """jaxnas ``fisher``: ``sum_l n_l sum_c 1/2 mean_n (sum_s a dL/da)^2`` over every conv and dense
  output ``a`` (after its bias, before BN); ``n_l`` = weights per output channel. ``sum_s a dL/da``
  is the gradient of a ones gate multiplied onto the layer output (forward hooks)."""
  layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
  gates = []

  def hook(m, inp, out):
    g = torch.ones(out.shape[:2], dtype=out.dtype, requires_grad=True)
    gates.append((m, g))
    return out * (g[:, :, None, None] if out.ndim == 4 else g)

  hs = [m.register_forward_hook(hook) for m in layers]
  try:
    loss = F.cross_entropy(model(x), y)
  finally:
    for h in hs:
      h.remove()
  grads = torch.autograd.grad(loss, [g for _, g in gates], allow_unused=True)
  total = 0.0
  with torch.no_grad():
    for (m, _), g in zip(gates, grads):
      if g is None:
        continue
      fan = m.weight[0].numel()
      total += fan * float((0.5 * g.square().mean(0)).sum())
  return total


K_JACOB = 1e-5


def _floor_score(n, k=K_JACOB):
  return -(math.log(n + k) + 1.0 / (n + k)) - (n - 1) * (math.log(k) + 1.0 / k)


def p_jacob_cov(model, x, y):
  """jaxnas ``jacob_cov``: ``-sum_i [log(v_i + k) + 1/(v_i + k)]``, ``v = eig(corrcoef(J))``,
  ``J[n] = d(sum of all logits)/dx_n`` (one backward of the batched sum), k = 1e-5, float32;
  eigenvalues clipped at 0; a constant row (zero Jacobian) gives jaxnas' floor score."""
  x = x.detach().clone().requires_grad_(True)
  (j,) = torch.autograd.grad(model(x).sum(), x, allow_unused=True)
  if j is None:   # the output does not depend on the input (no path through the cells)
    return _floor_score(x.shape[0])
  jac = j.reshape(j.shape[0], -1)
  n = jac.shape[0]
  z = jac - jac.mean(1, keepdim=True)
  norm = z.square().sum(1).sqrt()
  if bool((norm <= torch.finfo(jac.dtype).tiny).any()):
    return _floor_score(n)
  z = z / norm[:, None]
  corr = (z @ z.T).clamp(-1.0, 1.0)
  v = torch.linalg.eigvalsh(corr).clamp_min(0.0)
  return float(-(torch.log(v + K_JACOB) + 1.0 / (v + K_JACOB)).sum())


@torch.no_grad()
def p_nwot(model, x, y):
  """jaxnas ``nwot``: ``log max(|det K|, 1)``, ``K = sum_relu c c^T + (1-c)(1-c)^T`` with
  ``c = 1[relu input > 0]`` per sample, over every ReLU call (float32; ``slogdet(K / n) + B log n``
  with ``n = max diag K``; singular kernels 0)."""
  b = x.shape[0]
  kmat = torch.zeros(b, b)

  def hook(m, inp):
    c = (inp[0] > 0).reshape(b, -1).float()
    kmat.add_(c @ c.T + (1.0 - c) @ (1.0 - c).T)

  hs = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
  try:
    model(x)
  finally:
    for h in hs:
      h.remove()
  n = float(kmat.diagonal().max())
  n = n if n > 0 else 1.0
  sign, logdet = torch.linalg.slogdet(kmat / n)
  logdet = float(logdet) + b * math.log(n)
  if float(sign) == 0 or not math.isfinite(logdet):
    return 0.0
  return max(logdet, 0.0)


def p_synflow(model, x, y):
  """jaxnas ``synflow``: on the synflow variant (build it with ``variant='synflow'``), every
  parameter and buffer replaced by its absolute value, float64, one all-ones image;
  ``sum_W |W * dR/dW|``, ``R = sum`` of the logits, over conv and dense weights."""
  model = model.double()
  with torch.no_grad():
    for t in model.state_dict().values():
      if t.is_floating_point():
        t.abs_()
  ones = torch.ones((1,) + tuple(x.shape[1:]), dtype=torch.float64)
  ws = _weights(model)
  gs = torch.autograd.grad(model(ones).sum(), ws, allow_unused=True)
  with torch.no_grad():
    return float(sum((w * g).abs().sum() for w, g in zip(ws, _zeros_for_none(ws, gs))))


PROXIES = {"params": p_params, "flops": p_flops, "synflow": p_synflow,
           "grad_norm": p_grad_norm, "snip": p_snip, "grasp": p_grasp, "fisher": p_fisher,
           "jacob_cov": p_jacob_cov, "plain": p_plain, "l2_norm": p_l2_norm, "nwot": p_nwot}
#: The network variant each proxy scores.
VARIANT_OF = {name: ("synflow" if name == "synflow" else "default") for name in PROXIES}


def score(name, arch, C, N, x, y, num_classes=10, weights=None):
  """Builds the model of ``arch`` (default init, or jaxnas' ``weights`` when given) and scores it
  with proxy ``name``; ``x`` NCHW float32, ``y`` int64 labels."""
  model = build(arch, C, N, num_classes, VARIANT_OF[name])
  if weights is not None:
    if name == "synflow":
      model = model.double()
    load_jax(model, weights)
  return PROXIES[name](model, x, y)
