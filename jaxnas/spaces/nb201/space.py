"""NAS-Bench-201: architecture encodings, the search space, and parameter and FLOP counts.

An architecture is 6 op indices, one per cell edge, in the order of the benchmark's string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2), with ops
``none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3`` (indices 0..4). The benchmark
index 0..15624 is the NATS-Bench topology index, looked up in the bundled table.

The network is :class:`jaxnas.spaces.nb201.net.NB201Net`: it takes the architecture as an *input*,
so one compiled function serves every architecture and ``jax.vmap`` / ``jax.lax.map`` run over a
batch of them with a single parameter tree. With ``fixed_arch`` it is the discrete network of one
architecture, holding only its ops' parameters.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxnas.spaces import nb201
  >>> arch = nb201.encode('|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|')
  >>> net = nb201.NB201Net(C=4, N=1)
  >>> x = jnp.ones((2, 8, 8, 3))
  >>> variables = net.init(jax.random.key(0), x, arch)
  >>> net.apply(variables, x, arch).shape
  (2, 10)
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import _assets
from jaxnas.errors import JaxnasInputError
from jaxnas.spaces.base import SearchSpace
from jaxnas.spaces.nb201.layout import active_mask
from jaxnas.spaces.nb201.net import CONV1, CONV3, NONE, NUM_EDGES, NUM_OPS, OPS, POOL, NB201Net

NUM_ARCHS = NUM_OPS**NUM_EDGES

# ---------------------------------------------------------------- encodings


@functools.lru_cache(maxsize=1)
def _tables():
  ops = _assets.load_npz("nb201.npz")["ops"].astype(np.int32)
  code = ops @ (NUM_OPS ** np.arange(NUM_EDGES - 1, -1, -1))
  code_to_index = np.empty(NUM_ARCHS, np.int64)
  code_to_index[code] = np.arange(NUM_ARCHS)
  return ops, code_to_index


_NODE_RE = re.compile(r"^\|(.*)\|$")


def parse(arch_str: str) -> np.ndarray:
  """Arch string -> op indices ``(6,)``; raises :class:`JaxnasInputError` naming what is wrong."""
  if not isinstance(arch_str, str):
    raise JaxnasInputError(f"NB201 arch string must be a str, got {type(arch_str).__name__}")
  s = arch_str.strip()
  expected = "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'"
  nodes = s.split("+")
  if len(nodes) != 3:
    raise JaxnasInputError(
        f"invalid NB201 arch string {arch_str!r}: expected 3 nodes joined by '+' as {expected}")
  out = np.zeros(NUM_EDGES, np.int32)
  e = 0
  for i, node in enumerate(nodes, start=1):
    m = _NODE_RE.match(node)
    if not m:
      raise JaxnasInputError(
          f"invalid NB201 arch string {arch_str!r}: node {i} {node!r} must look like '|op~j|...|'")
    ops = {}
    for tok in m.group(1).split("|"):
      op, sep, src = tok.partition("~")
      if not sep or not src.isdigit():
        raise JaxnasInputError(
            f"invalid NB201 arch string {arch_str!r}: edge {tok!r} must be 'op~input'")
      if op not in OPS:
        raise JaxnasInputError(
            f"unknown op {op!r} in NB201 arch string {arch_str!r}; allowed: {', '.join(OPS)}")
      ops[int(src)] = OPS.index(op)
    if sorted(ops) != list(range(i)) or len(m.group(1).split("|")) != i:
      raise JaxnasInputError(
          f"invalid NB201 arch string {arch_str!r}: node {i} needs exactly one edge from each of "
          f"inputs {list(range(i))}, got {node!r}")
    for j in range(i):
      out[e] = ops[j]
      e += 1
  return out


def decode(arch) -> str:
  """Op indices ``(6,)`` -> arch string."""
  a = _check_ops(arch)
  groups, e = [], 0
  for i in range(1, 4):
    groups.append("|" + "|".join(f"{OPS[a[e + j]]}~{j}" for j in range(i)) + "|")
    e += i
  return "+".join(groups)


def _check_ops(arch) -> np.ndarray:
  a = np.asarray(arch)
  if a.shape != (NUM_EDGES,) or not np.issubdtype(a.dtype, np.integer):
    raise JaxnasInputError(
        f"NB201 architecture must be {NUM_EDGES} integer op indices, got shape {a.shape} "
        f"dtype {a.dtype}")
  if a.min() < 0 or a.max() >= NUM_OPS:
    raise JaxnasInputError(
        f"NB201 op indices must be in 0..{NUM_OPS - 1} ({', '.join(OPS)}), got {a.tolist()}")
  return a.astype(np.int32)


def _check_index(i) -> int:
  if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
    raise JaxnasInputError(f"NB201 index must be an integer, got {i!r}")
  if not 0 <= int(i) < NUM_ARCHS:
    raise JaxnasInputError(f"NB201 index {int(i)} out of range; allowed: 0..{NUM_ARCHS - 1}")
  return int(i)


def encode(arch) -> np.ndarray:
  """Any single-architecture form -> op indices ``(6,)`` int32.

  Accepts an arch string, a benchmark index (int, or a string of digits), or 6 op indices.
  """
  if isinstance(arch, str):
    s = arch.strip()
    if s.isdigit():
      return from_index(_check_index(int(s)))
    return parse(s)
  if isinstance(arch, (int, np.integer)) and not isinstance(arch, (bool, np.bool_)):
    return from_index(_check_index(arch))
  return _check_ops(arch)


def from_index(index):
  """Benchmark index (int or int array) -> op indices (``(6,)`` or ``(n, 6)``)."""
  ops, _ = _tables()
  idx = np.asarray(index)
  if idx.size and (idx.min() < 0 or idx.max() >= NUM_ARCHS):
    bad = idx[(idx < 0) | (idx >= NUM_ARCHS)].ravel()[0]
    raise JaxnasInputError(f"NB201 index {int(bad)} out of range; allowed: 0..{NUM_ARCHS - 1}")
  return ops[idx].copy()


def to_index(arch):
  """Op indices ``(..., 6)`` -> benchmark index (int or array)."""
  _, code_to_index = _tables()
  a = np.asarray(arch, np.int64)
  code = a @ (NUM_OPS ** np.arange(NUM_EDGES - 1, -1, -1))
  out = code_to_index[code]
  return int(out) if out.ndim == 0 else out


def all_archs() -> np.ndarray:
  """All 15,625 architectures ``(15625, 6)``, row i being benchmark index i."""
  return _tables()[0].copy()


def sample(key, n: int):
  """``n`` architectures drawn uniformly, ``(n, 6)`` int32."""
  return jax.random.randint(key, (n, NUM_EDGES), 0, NUM_OPS, dtype=jnp.int32)


def mutate(key, arch):
  """Changes the op of one uniformly chosen edge to a different op (regularised evolution)."""
  k1, k2 = jax.random.split(key)
  e = jax.random.randint(k1, (), 0, NUM_EDGES)
  delta = jax.random.randint(k2, (), 1, NUM_OPS)
  arch = jnp.asarray(arch)
  return arch.at[e].set((arch[e] + delta) % NUM_OPS)


def one_hot(arch, dtype=jnp.float32):
  """Op indices ``(..., 6)`` -> one-hot weights ``(..., 6, 5)``."""
  return jax.nn.one_hot(arch, NUM_OPS, dtype=dtype)


def discretize(scores, exclude_none: bool = False) -> np.ndarray:
  """Op indices ``(6,)`` picking the highest score ``(6, 5)`` on each edge (optionally never
  ``none``, as DARTS-style parsing does)."""
  s = np.array(scores, np.float64)
  if s.shape != (NUM_EDGES, NUM_OPS):
    raise JaxnasInputError(f"NB201 op scores must have shape (6, 5), got {s.shape}")
  if exclude_none:
    s[:, NONE] = -np.inf
  return np.argmax(s, axis=1).astype(np.int32)


def model(**config) -> NB201Net:
  """The configured module; see :class:`NB201Net` for the fields."""
  allowed = set(NB201Net.__dataclass_fields__) - {"parent", "name"}
  bad = sorted(set(config) - allowed)
  if bad:
    raise JaxnasInputError(f"unknown NB201 option {bad[0]!r}; allowed: {', '.join(sorted(allowed))}")
  if config.get("fixed_arch") is not None:
    config["fixed_arch"] = tuple(int(a) for a in encode(config["fixed_arch"]))
  return NB201Net(**config)


# ------------------------------------------------------------- counting


def _np_or_jnp(arch):
  if isinstance(arch, np.ndarray):
    return np, arch.astype(np.int64)
  if isinstance(arch, (list, tuple)):
    return np, np.asarray(arch, np.int64)
  return jnp, jnp.asarray(arch)


def _stage_sizes(C, resolution):
  return [(C * 2**s, (resolution // 2**s) ** 2) for s in range(3)]


def count_params(arch, C=16, N=5, num_classes=10, bn="batch", reduction_bn=None,
                 cell_bn_affine=True, cell_conv_bias=False, in_channels=3, **_):
  """Parameters of the discrete network (BN scale/bias included, running statistics not).

  ``arch``: op indices ``(..., 6)``. numpy in -> exact int64; jax in -> float32.
  """
  xp, a = _np_or_jnp(arch)
  n1, n3 = (a == CONV1).sum(-1), (a == CONV3).sum(-1)
  rbn = reduction_bn or bn
  bn_p = lambda c: 2 * c if bn != "none" else 0
  total = 9 * in_channels * C + bn_p(C)
  cell1 = cell3 = 0
  for cs, _ in _stage_sizes(C, 4):
    extra = (2 * cs if (bn != "none" and cell_bn_affine) else 0) + (cs if cell_conv_bias else 0)
    cell1 += N * (cs * cs + extra)
    cell3 += N * (9 * cs * cs + extra)
  for ci in (C, 2 * C):
    co = 2 * ci
    total += 9 * ci * co + 9 * co * co + ci * co + (4 * co if rbn != "none" else 0)
  total += bn_p(4 * C) + 4 * C * num_classes + num_classes
  if xp is np:
    return total + cell1 * n1 + cell3 * n3
  return jnp.float32(total) + jnp.float32(cell1) * n1 + jnp.float32(cell3) * n3


def count_flops(arch, C=16, N=5, num_classes=10, bn="batch", reduction_bn=None,
                cell_bn_affine=True, cell_conv_bias=False, in_channels=3, resolution=32,
                convention="nb201", **_):
  """FLOPs per image of the discrete network.

  ``convention='macs'``: multiply-accumulates of conv and dense layers only.
  ``convention='nb201'`` (default): those MACs plus the per-element counts of the usual PyTorch
  FLOP counters (torchstat convention): ReLU 1 and BN 2 (affine) or 1 per input element, average
  pooling k^2 per output element, global pooling 1 per input element, biases 1 per output element.
  This reproduces the reference FLOPs of NB201 architectures (e.g. index 180: 121.05 M) to <0.01 %.
  """
  if convention not in ("nb201", "macs"):
    raise JaxnasInputError(f"unknown FLOP convention {convention!r}; allowed: nb201, macs")
  xp, a = _np_or_jnp(arch)
  ew = convention == "nb201"
  rbn = reduction_bn or bn
  n1, n3, npool = (a == CONV1).sum(-1), (a == CONV3).sum(-1), (a == POOL).sum(-1)
  bn_cost = lambda mode, affine=True: (2 if affine else 1) if (mode != "none" and ew) else 0
  hw0 = resolution * resolution
  total = 9 * in_channels * C * hw0 + bn_cost(bn) * C * hw0
  c1 = c3 = cp = 0
  for cs, hw in _stage_sizes(C, resolution):
    e = cs * hw
    extra = (1 + bn_cost(bn, cell_bn_affine) + (1 if cell_conv_bias else 0)) * e if ew else 0
    c1 += N * (cs * cs * hw + extra)
    c3 += N * (9 * cs * cs * hw + extra)
    cp += N * (9 * e if ew else 0)
  for s, ci in ((0, C), (1, 2 * C)):
    co, hw_in = 2 * ci, (resolution // 2**s) ** 2
    hw_out = hw_in // 4
    total += 9 * ci * co * hw_out + 9 * co * co * hw_out + ci * co * hw_out
    if ew:
      total += ci * hw_in + co * hw_out + 2 * bn_cost(rbn) * co * hw_out + 4 * ci * hw_out
  c4, hw4 = 4 * C, (resolution // 4) ** 2
  total += c4 * num_classes
  if ew:
    total += (bn_cost(bn) + 1 + 1) * c4 * hw4 + num_classes
  if xp is np:
    return total + c1 * n1 + c3 * n3 + cp * npool
  return (jnp.float32(total) + jnp.float32(c1) * n1 + jnp.float32(c3) * n3
          + jnp.float32(cp) * npool)


def describe(arch) -> dict:
  """A search result's fields: the benchmark string, its index and the parameter count (M) of
  the benchmark network (C=16, N=5)."""
  a = encode(arch)
  return {"arch_str": decode(a), "index": int(to_index(a)),
          "params_M": float(count_params(a)) / 1e6}


def accuracy(archs, metric: str = "cifar10_test200"):
  """NAS-Bench-201 ground truth ``metric`` of ``(n, 6)`` architectures (by benchmark index)."""
  from jaxnas.benchmarks import nb201 as truth
  return truth.accuracy(to_index(np.asarray(archs, np.int32).reshape(-1, NUM_EDGES)), metric)


def block_shapes(x_shape, C: int = 16, N: int = 5, **_) -> tuple:
  """``(in_shape, out_shape)`` of NB201Net's blocks ``1..3N+2`` in forward order
  (:func:`.net.block_index`: stage 0's N cells, the reduction opening stage 1, its N cells, ...)
  for an input batch of ``x_shape`` (NHWC)."""
  b, h, w = x_shape[:3]
  stages = [(b, h, w, C)]
  for _ in range(2):   # a reduction halves the resolution (stride 2, padding 1) and doubles C
    stages.append((b, -(-stages[-1][1] // 2), -(-stages[-1][2] // 2), 2 * stages[-1][3]))
  out = []
  for s, shape in enumerate(stages):
    if s:
      out.append((stages[s - 1], shape))
    out += [(shape, shape)] * N
  return tuple(out)


def _metrics() -> tuple:
  from jaxnas.benchmarks.nb201 import METRICS
  return METRICS


SPACE = SearchSpace(
    name="nb201",
    arch_shape=(NUM_EDGES,),
    num_archs=NUM_ARCHS,
    model=model,
    encode=encode,
    decode=decode,
    sample=sample,
    active_mask=active_mask,
    count_params=count_params,
    count_flops=count_flops,
    to_index=to_index,
    from_index=from_index,
    mutate=mutate,
    alpha_shape=(NUM_EDGES, NUM_OPS),
    discretize=discretize,
    unrolls=True,
    provides=("features", "nonlinear_readout"),   # BN + ReLU before the pooling
    # FreeDARTS' NB201 supernet: the benchmark network, cell BN without affine parameters
    search_config=dict(C=16, N=5, cell_bn_affine=False, bn="batch"),
    small_config=dict(C=8, N=1, cell_bn_affine=False, bn="batch"),
    block_shapes=block_shapes,
    describe=describe,
    metrics=_metrics(),
    accuracy=accuracy,
)
