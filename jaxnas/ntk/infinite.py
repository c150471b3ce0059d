"""Infinite-width NNGP and NTK kernels of NB201 cell networks (no BatchNorm).

Built from the stax-style combinators of :mod:`jaxnas.ntk.stax` (``backend='jaxnas'``, default) or
from ``neural_tangents.stax`` (``backend='neural_tangents'``, where neural-tangents imports: the
oracle environment of ``experiments/nt_oracle.py``); both give the same kernels.

The *cell network* is the NB201 cell without BN, stacked: stem Conv3x3 (3 -> C) -> ``N`` cells ->
ReLU -> global average pool -> Dense(K), in NTK parameterisation (every conv/dense computes
``W_std / sqrt(fan_in) * (x * W)`` with ``W ~ N(0, 1)``, no biases). It is one NB201 stage: the
residual reduction blocks have no stax form (PyTorch's symmetric padding of the stride-2 conv is
not a stax padding mode), and NTK theory has no BatchNorm. ``W_std = 1/sqrt(3)`` reproduces the
variance of PyTorch's default initialiser (``U(+-1/sqrt(fan_in))``).

The cell is written with ``serial / parallel / FanOut / FanInSum / Conv / Relu / AvgPool /
Identity`` (jaxnas adds ``Zero`` and ``Linear``). One subtlety: ``FanInSum``'s kernel is the *sum of its branches' kernels*, i.e. it
assumes independent branches. That holds for branches that end in a freshly initialised conv (zero
mean weights decorrelate them), but not for parameter-free paths (skip, avg-pool) that leave one
source twice, e.g. ``n3 = skip(n1) + skip(skip(n1))`` has covariance ``4 K``, not ``2 K``; 3,352 of
the 15,625 cells contain such a pair. So each node is expanded into a sum over independent
*sources* (the cell input and the output of each conv edge) of a linear, parameter-free operator
``Q_s`` (a polynomial in the 3x3 average pool ``P``, from counting the paths): ``Q_s = I`` is
``Identity``, ``Q_s = P^a`` is ``a`` ``AvgPool`` layers, and any other polynomial (e.g. ``2 I``,
``I + P``) is an exact linear map with the dense matrix of ``Q_s`` (jaxnas' ``Linear``;
neural-tangents' ``Aggregate``). Sub-networks shared by
several sources are duplicated in the stax graph; that leaves the infinite-width kernels unchanged
(they meet only through independent zero-mean convs) but makes stax's own ``apply_fn`` a different
finite network, so :func:`finite_apply` implements the finite cell network itself (shared nodes,
same operations as :class:`jaxnas.spaces.nb201.NB201Net` with ``bn='none'``).

References: Jacot et al. 2018 (NTK); Novak et al. 2020 (neural-tangents); Arora et al. 2019 (CNTK).
"""

from __future__ import annotations

import collections
import contextlib
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasInputError, unknown
from jaxnas.ntk import stax as own_stax
from jaxnas.ntk.empirical import BACKENDS, import_nt
from jaxnas.spaces import nb201, ops
from jaxnas.spaces.nb201.net import CONV1, CONV3, EDGES, NONE, POOL, SKIP

#: Variance scale of PyTorch's default conv/linear initialiser, ``U(+-1/sqrt(fan_in))``.
TORCH_W_STD = float(1.0 / np.sqrt(3.0))
_INPUT = "input"


def components(arch):
  """Each node as ``{source: {pool_power: multiplicity}}``.

  Sources are ``'input'`` (the cell input, node 0) and conv edge indices ``e`` (the output of that
  edge's ReLU-Conv). Node ``i`` equals ``sum_s sum_a mult * P^a (source_s)``, ``P`` the 3x3 pool.
  """
  arch = nb201.encode(arch)
  nodes = {0: {_INPUT: collections.Counter({0: 1})}}
  for i in (1, 2, 3):
    acc: dict = {}
    for e, (to, frm) in enumerate(EDGES):
      if to != i or arch[e] == NONE:
        continue
      op = int(arch[e])
      if op in (CONV1, CONV3):
        acc.setdefault(e, collections.Counter())[0] += 1
        continue
      shift = 1 if op == POOL else 0
      for s, poly in nodes[frm].items():
        c = acc.setdefault(s, collections.Counter())
        for a, mult in poly.items():
          c[a + shift] += mult
    nodes[i] = acc
  return nodes


pool_matrix = own_stax.avg_pool_matrix


def _operator(poly, h: int, w: int) -> np.ndarray:
  p = pool_matrix(h, w).astype(np.float64)
  q = np.zeros((h * w, h * w))
  for a, mult in poly.items():
    q += mult * np.linalg.matrix_power(p, a)
  return q


class _Ctx(NamedTuple):
  arch: tuple
  C: int
  h: int
  w: int
  w_std: float
  own: bool  # jaxnas.ntk.stax (else neural_tangents.stax)


def _linear(stax, poly, ctx: _Ctx):
  """stax layer applying the operator ``sum_a mult * P^a`` (an empty poly is the zero map)."""
  if dict(poly) == {0: 1}:
    return stax.Identity()
  if len(poly) == 1 and list(poly.values()) == [1]:
    (a,) = poly.keys()
    pool = (stax.AvgPool() if ctx.own else
            stax.AvgPool((3, 3), strides=(1, 1), padding="SAME", normalize_edges=True))
    return stax.serial(*([pool] * a))
  if ctx.own:
    return stax.Linear(_operator(poly, ctx.h, ctx.w)) if poly else stax.Zero()
  q = _operator(poly, ctx.h, ctx.w) if poly else np.zeros((ctx.h * ctx.w,) * 2)
  # stax.Aggregate: out[n, j] = sum_i x[n, i] pattern[n, i, j], so pattern = Q^T.
  dense = jnp.asarray(q.T.reshape(ctx.h, ctx.w, ctx.h, ctx.w))  # float64 under x64

  def to_dense(pattern):
    return jnp.broadcast_to(dense, (pattern.shape[0],) + dense.shape)

  return stax.Aggregate(aggregate_axis=(1, 2), batch_axis=0, channel_axis=-1, to_dense=to_dense)


def _node(stax, i: int, comps, ctx: _Ctx):
  """stax layer: cell input -> node ``i``."""
  branches = []
  for s, poly in sorted(comps[i].items(), key=lambda kv: str(kv[0])):
    if s == _INPUT:
      src = stax.Identity()
    else:
      k = 1 if ctx.arch[s] == CONV1 else 3
      src = stax.serial(_node(stax, EDGES[s][1], comps, ctx), stax.Relu(),
                        stax.Conv(ctx.C, (k, k), padding="SAME", W_std=ctx.w_std, b_std=None))
    branches.append(stax.serial(src, _linear(stax, poly, ctx)))
  if not branches:  # no incoming operation: the node is identically zero
    return _linear(stax, {}, ctx)
  if len(branches) == 1:
    return branches[0]
  return stax.serial(stax.FanOut(len(branches)), stax.parallel(*branches), stax.FanInSum())


@contextlib.contextmanager
def _quiet_stax():
  """Silences stax's two construction warnings that the source expansion makes moot (branch
  independence is guaranteed by construction; Aggregate reports its channel axis as 3, not -1)."""
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*FanIn. layers assume independent inputs.*")
    warnings.filterwarnings("ignore", message=".*potentially mismatching .channel_axis.*")
    yield


def _stax(backend: str):
  if backend not in BACKENDS:
    raise unknown("kernel backend", backend, BACKENDS)
  return own_stax if backend == "jaxnas" else import_nt().stax


def cell_network(arch, *, C: int = 16, N: int = 1, num_classes: int = 1, resolution: int = 8,
                 w_std: float = TORCH_W_STD, backend: str = "jaxnas"):
  """``(init_fn, apply_fn, kernel_fn)`` of the cell network of ``arch`` (module docstring).

  With ``backend='neural_tangents'`` call the functions with ``pattern=`` :func:`pattern_for`
  ``(x)`` (``kernel_fn``: a pair), which its exact ``Aggregate`` layers need;
  :func:`analytic_kernels` does this for you.
  """
  stax = _stax(backend)
  a = tuple(int(v) for v in nb201.encode(arch))
  ctx = _Ctx(a, C, resolution, resolution, w_std, backend == "jaxnas")
  comps = components(a)
  with _quiet_stax():
    layers = [stax.Conv(C, (3, 3), padding="SAME", W_std=w_std, b_std=None)]
    layers += [_node(stax, 3, comps, ctx) for _ in range(N)]
    layers += [stax.Relu(), stax.GlobalAvgPool(),
               stax.Dense(num_classes, W_std=w_std, b_std=None)]
    return stax.serial(*layers)


def pattern_for(x):
  """The (dummy) ``pattern`` argument of the ``Aggregate`` layers: one entry per sample."""
  return jnp.zeros((x.shape[0],), jnp.float32)


class Kernels(NamedTuple):
  """Infinite-width kernels of :func:`analytic_kernels`, each ``(B1, B2)`` (per output unit).

  Attributes:
    nngp: the NNGP kernel (covariance of the outputs at initialisation).
    ntk: the neural tangent kernel.
  """
  nngp: jax.Array
  ntk: jax.Array


def analytic_kernels(arch, x1, x2=None, *, N: int = 1, w_std: float = TORCH_W_STD,
                     backend: str = "jaxnas") -> Kernels:
  """Infinite-width NNGP and NTK ``(B1, B2)`` of the cell network of ``arch`` on NHWC inputs.

  Per output unit (the infinite-width kernel is ``K (x) I_outputs``). Inputs must be square.
  ``backend``: ``'jaxnas'`` (:mod:`jaxnas.ntk.stax`) or ``'neural_tangents'``.
  """
  if x1.ndim != 4 or x1.shape[1] != x1.shape[2]:
    raise JaxnasInputError(f"inputs must be square NHWC images, got shape {x1.shape}")
  _, _, kfn = cell_network(arch, C=1, N=N, resolution=x1.shape[1], w_std=w_std, backend=backend)
  if backend == "jaxnas":
    return Kernels(*kfn(x1, x2, ("nngp", "ntk")))
  x2_ = x1 if x2 is None else x2
  with _quiet_stax():
    k = kfn(x1, x2, ("nngp", "ntk"), pattern=(pattern_for(x1), pattern_for(x2_)))
  return Kernels(k[0], k[1])


# ------------------------------------------------------------ the finite cell network


def finite_init(key, arch, *, C: int, N: int = 1, num_classes: int = 1, in_channels: int = 3):
  """Standard-normal parameters of the finite cell network (NTK parameterisation)."""
  a = nb201.encode(arch)
  keys = iter(jax.random.split(key, 2 + 6 * N))
  params = {"stem": jax.random.normal(next(keys), (3, 3, in_channels, C))}
  for n in range(N):
    cell = {}
    for e in range(6):
      k = next(keys)
      if a[e] in (CONV1, CONV3):
        ks = 1 if a[e] == CONV1 else 3
        cell[f"edge_{e}"] = jax.random.normal(k, (ks, ks, C, C))
    params[f"cell_{n}"] = cell
  params["readout"] = jax.random.normal(next(keys), (C, num_classes))
  return params


def finite_apply(params, x, arch, *, w_std: float = TORCH_W_STD):
  """The finite cell network: logits ``(B, num_classes)`` (``arch`` static)."""
  a = tuple(int(v) for v in nb201.encode(arch))

  def conv(h, kern, k):
    fan_in = k * k * h.shape[-1]
    return w_std / np.sqrt(fan_in) * ops.conv2d(h, kern, padding=k // 2)

  h = conv(x, params["stem"], 3)
  n_cells = sum(1 for k in params if k.startswith("cell_"))
  for n in range(n_cells):
    nodes = [h]
    for i in (1, 2, 3):
      acc = None
      for e, (to, frm) in enumerate(EDGES):
        if to != i or a[e] == NONE:
          continue
        src = nodes[frm]
        if a[e] == SKIP:
          y = src
        elif a[e] == POOL:
          y = ops.avg_pool_3x3(src)
        else:
          y = conv(jax.nn.relu(src), params[f"cell_{n}"][f"edge_{e}"], 1 if a[e] == CONV1 else 3)
        acc = y if acc is None else acc + y
      nodes.append(jnp.zeros_like(h) if acc is None else acc)
    h = nodes[3]
  pooled = jnp.mean(jax.nn.relu(h), axis=(1, 2))
  return w_std / np.sqrt(pooled.shape[-1]) * pooled @ params["readout"]
