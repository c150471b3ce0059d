"""NAS-Bench-101 cell specs: parsing, pruning, validity, the NB101 graph hash, vertex channels and
a fixed-shape padded encoding (methods-spec §13.1.3, §13.2, §13.4).

A spec is a V x V 0/1 strictly upper-triangular adjacency matrix (``M[i, j] = 1``: edge i -> j) and
V op names, vertex 0 the cell input and vertex V-1 the output (V <= 7). Ops are named as NASLib
and nasbench do, with NASLib's codes 0..4 (:data:`OPS`); the hash labels interior ops with
nasbench's order ``conv3x3=0, conv1x1=1, maxpool=2`` (:data:`HASH_OPS`, §13.0 F2).

Example:
  >>> from jaxnas.spaces.nb101 import spec as S
  >>> s = S.parse([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "conv1x1-bn-relu", "output"])
  >>> S.prune(s) == s, S.spec_hash(S.parse([[0, 1], [0, 0]], ["input", "output"]))[:8]
  (True, '043721b9')
"""

from __future__ import annotations

import functools
import hashlib
from typing import NamedTuple

import numpy as np

from jaxnas.errors import JaxnasInputError

#: NASLib op order; a spec's op code is the index here (§13.0 F2).
OPS = ("input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu")
INPUT, OUTPUT, MAXPOOL, CONV1X1, CONV3X3 = range(5)
INTERIOR_OPS = OPS[2:]
#: nasbench ``available_ops``: the hash label of an interior op is its index here (§13.2.3).
HASH_OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
#: Kernel size of the conv ops.
KERNEL = {"conv1x1-bn-relu": 1, "conv3x3-bn-relu": 3}
MAX_VERTICES = 7
MAX_EDGES = 9


class Spec(NamedTuple):
  """A cell spec: ``matrix`` (V tuples of V ints 0/1) and ``ops`` (V names of :data:`OPS`).

  Hashable, so it can be a static attribute of a Flax module or a ``jit`` static argument.
  """
  matrix: tuple
  ops: tuple

  @property
  def num_vertices(self) -> int:
    return len(self.ops)

  def array(self) -> np.ndarray:
    """The adjacency matrix as an ``int64`` array."""
    return np.array(self.matrix, np.int64).reshape(self.num_vertices, self.num_vertices)


def _op_name(op, i: int) -> str:
  if isinstance(op, (int, np.integer)) and not isinstance(op, bool):
    if 0 <= op < len(OPS):
      return OPS[int(op)]
  elif isinstance(op, str) and op.strip() in OPS:
    return op.strip()
  raise JaxnasInputError(f"NB101 op {i} is {op!r}; allowed: names {', '.join(OPS)} or codes "
                         f"0..{len(OPS) - 1}")


def parse(matrix, ops) -> Spec:
  """Checks and normalises a spec (raw or pruned); raises :class:`JaxnasInputError` on bad input.

  ``matrix``: a V x V nested sequence or array, or a string of V*V digits (row-major, as the
  CSV's ``matrix`` column). ``ops``: V names or codes (:data:`OPS`), or one comma-separated string.
  Requirements (§13.2.1-2): 2 <= V <= 7, entries 0/1, strictly upper triangular, ``len(ops) = V``,
  ops[0] = input, ops[-1] = output, interior ops one of :data:`INTERIOR_OPS`.
  """
  if isinstance(ops, str):
    ops = ops.split(",")
  ops = list(ops)
  if isinstance(matrix, str):
    s = matrix.strip()
    v = round(len(s) ** 0.5)
    if v * v != len(s) or not s.isdigit():
      raise JaxnasInputError(f"NB101 matrix string {matrix!r} must be V*V digits 0/1 (row-major)")
    matrix = [[int(c) for c in s[r * v:(r + 1) * v]] for r in range(v)]
  try:
    m = np.asarray(matrix)
  except ValueError as e:
    raise JaxnasInputError(f"NB101 matrix {matrix!r} is not a square 0/1 array") from e
  if m.ndim != 2 or m.shape[0] != m.shape[1]:
    raise JaxnasInputError(f"NB101 matrix must be square, got shape {m.shape}")
  v = m.shape[0]
  if not 2 <= v <= MAX_VERTICES:
    raise JaxnasInputError(f"NB101 matrix has {v} vertices; allowed: 2..{MAX_VERTICES}")
  if not np.all((m == 0) | (m == 1)):
    bad = sorted(set(m.ravel().tolist()) - {0, 1})
    raise JaxnasInputError(f"NB101 matrix entries must be 0 or 1, got {bad}")
  m = m.astype(np.int64)
  if np.any(np.tril(m)):
    i, j = np.argwhere(np.tril(m))[0].tolist()
    raise JaxnasInputError(f"NB101 matrix must be strictly upper triangular; entry ({i}, {j}) is 1")
  if len(ops) != v:
    raise JaxnasInputError(f"NB101 spec has {len(ops)} ops for a {v}x{v} matrix; need {v}")
  names = tuple(_op_name(o, i) for i, o in enumerate(ops))
  if names[0] != "input" or names[-1] != "output":
    raise JaxnasInputError(f"NB101 ops must start with 'input' and end with 'output', got {names}")
  for i, n in enumerate(names[1:-1], 1):
    if n not in INTERIOR_OPS:
      raise JaxnasInputError(f"NB101 interior op {i} is {n!r}; allowed: {', '.join(INTERIOR_OPS)}")
  return Spec(tuple(tuple(r) for r in m.tolist()), names)


def as_spec(spec) -> Spec:
  """A :class:`Spec`, or a pair ``(matrix, ops)`` passed to :func:`parse`."""
  if isinstance(spec, Spec):
    return spec
  try:
    matrix, ops = spec
  except (TypeError, ValueError) as e:
    raise JaxnasInputError(f"NB101 spec must be a Spec or a (matrix, ops) pair, got {spec!r}") \
        from e
  return parse(matrix, ops)


@functools.lru_cache(maxsize=4096)
def _prune(spec: Spec):
  m, v = spec.array(), spec.num_vertices
  fwd, stack = {0}, [0]
  while stack:
    u = stack.pop()
    for w in np.flatnonzero(m[u]).tolist():
      if w not in fwd:
        fwd.add(w)
        stack.append(w)
  bwd, stack = {v - 1}, [v - 1]
  while stack:
    u = stack.pop()
    for w in np.flatnonzero(m[:, u]).tolist():
      if w not in bwd:
        bwd.add(w)
        stack.append(w)
  keep = sorted(fwd & bwd)
  if len(keep) < 2:  # more than V-2 extraneous vertices: input does not reach output
    return None
  pm = m[np.ix_(keep, keep)]
  return Spec(tuple(tuple(r) for r in pm.tolist()), tuple(spec.ops[i] for i in keep))


def prune(spec) -> Spec:
  """Removes extraneous vertices (§13.2.1): those not both reachable from the input and reaching
  the output; survivors keep their order and their edges. Raises :class:`JaxnasInputError` when
  the input does not reach the output (the spec is invalid). Idempotent."""
  spec = as_spec(spec)
  out = _prune(spec)
  if out is None:
    raise JaxnasInputError(f"NB101 spec is invalid: the input does not reach the output "
                           f"(matrix {spec.matrix})")
  return out


def is_valid(spec) -> bool:
  """nasbench validity (§13.2.2): parses, is valid after pruning, and the pruned spec has at most
  7 vertices and at most 9 edges (a raw matrix may have more)."""
  try:
    p = prune(spec)
  except JaxnasInputError:
    return False
  return p.num_vertices <= MAX_VERTICES and int(p.array().sum()) <= MAX_EDGES


def num_edges(spec) -> int:
  return int(as_spec(spec).array().sum())


def _md5(s: str) -> str:
  return hashlib.md5(s.encode("utf-8")).hexdigest()


def spec_hash(spec) -> str:
  """The NB101 graph hash (nasbench ``hash_module``, §13.2.3) of the pruned spec.

  Labels [-1] + [HASH_OPS index of each interior op] + [-2]; start h_v = md5(str((out_deg_v,
  in_deg_v, label_v))) with Python ints; V synchronous rounds of h_v <- md5(join(sorted in-neighbour
  hashes) + '|' + join(sorted out-neighbour hashes) + '|' + h_v); fingerprint md5(str(sorted(h))).
  """
  p = prune(spec)
  m, v = p.array(), p.num_vertices
  labels = [-1] + [HASH_OPS.index(o) for o in p.ops[1:-1]] + [-2]
  out_deg, in_deg = m.sum(1).tolist(), m.sum(0).tolist()
  h = [_md5(str((out_deg[i], in_deg[i], labels[i]))) for i in range(v)]
  for _ in range(v):
    h = [_md5("".join(sorted(h[w] for w in range(v) if m[w, i])) + "|"
              + "".join(sorted(h[w] for w in range(v) if m[i, w])) + "|" + h[i])
         for i in range(v)]
  return _md5(str(sorted(h)))


def compute_vertex_channels(c_in: int, c_out: int, matrix) -> tuple:
  """Vertex widths of a cell (nasbench ``compute_vertex_channels``, §13.1.3) for a pruned matrix.

  vc[0] = c_in, vc[V-1] = c_out. The n_out interior vertices feeding the output (ascending) get
  c_out // n_out, the first c_out % n_out of them one more; then, for v = V-3 .. 1 not feeding the
  output, vc[v] = max of vc[d] over its interior successors d. E.g. three branches into the output
  with c_out=8 give (8, 3, 3, 2, 8).
  """
  m = np.asarray(matrix)
  v = m.shape[0]
  vc = [0] * v
  vc[0], vc[v - 1] = c_in, c_out
  if v == 2:
    return tuple(vc)
  feeds = [i for i in range(1, v - 1) if m[i, v - 1]]
  base, rem = divmod(c_out, len(feeds))
  for r, i in enumerate(feeds):
    vc[i] = base + (1 if r < rem else 0)
  for i in range(v - 3, 0, -1):
    if not m[i, v - 1]:
      for d in range(i + 1, v - 1):
        if m[i, d]:
          vc[i] = max(vc[i], vc[d])
  return tuple(vc)


# ------------------------------------------------------------------ padded encoding (§13.4)


def padded_slots(num_vertices: int) -> tuple:
  """Slot in the 7-vertex padded layout of each vertex of a pruned spec: input 0, interior vertex
  i at slot i, output at slot 6 (dead slots V-1..5 in between keep the order topological)."""
  return tuple(range(num_vertices - 1)) + (MAX_VERTICES - 1,)


class Encoding(NamedTuple):
  """Fixed-shape encoding of a pruned spec for a jitted network (§13.4), NumPy ``int32`` arrays.

  ``matrix`` (7, 7): the pruned matrix placed at :func:`padded_slots`; ``ops`` (7,): NASLib codes
  (:data:`OPS`), -1 on dead slots; ``live`` (7,) bool; ``vc`` (S, 7): vertex widths per stack with
  cell width ``channels[s]`` (0 on dead slots; slot 0 holds ``channels[s]``, the input width of all
  but a stack's first cell, and is unused); ``offsets`` (S, 7): channel offset of each
  output-feeding interior vertex in the output concatenation (sum of vc[u] over earlier feeding
  u), 0 elsewhere.
  """
  matrix: np.ndarray
  ops: np.ndarray
  live: np.ndarray
  vc: np.ndarray
  offsets: np.ndarray


def encode(spec, channels=(128, 256, 512)) -> Encoding:
  """:class:`Encoding` of the pruned ``spec`` for cell widths ``channels`` (one per stack)."""
  p = prune(spec)
  m, v, n = p.array(), p.num_vertices, MAX_VERTICES
  slot = np.array(padded_slots(v))
  mat = np.zeros((n, n), np.int32)
  mat[np.ix_(slot, slot)] = m
  ops = np.full(n, -1, np.int32)
  ops[slot] = [OPS.index(o) for o in p.ops]
  live = ops >= 0
  vc = np.zeros((len(channels), n), np.int32)
  off = np.zeros((len(channels), n), np.int32)
  for s, c in enumerate(channels):
    vc[s, slot] = compute_vertex_channels(c, c, m)
    acc = 0
    for t in range(1, n - 1):
      if mat[t, n - 1]:
        off[s, t] = acc
        acc += vc[s, t]
  return Encoding(mat, ops, live, vc, off)
