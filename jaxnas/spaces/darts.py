"""The DARTS search space (Liu et al., ICLR 2019; methods-spec §1.2): genotypes, sampling, counts.

**Discrete encoding.** An architecture (a genotype) is an int array ``(2, 8, 2)``:
``arch[t, s] = (input node, op index)`` for cell type ``t`` (0 normal, 1 reduce) and slot ``s``.
Slots ``2n, 2n+1`` feed intermediate node ``n + 2`` from two *distinct* earlier nodes
(``0 <= input <= n + 1``; 0 and 1 are the cell inputs), in the order of DARTS' ``Genotype``
namedtuple; ops index :data:`OPS` (DARTS' ``PRIMITIVES``). Every intermediate node is concatenated
into the cell output (``concat = [2, 3, 4, 5]``).

**Genotype JSON** (DARTS' ``Genotype`` as JSON; :func:`decode` writes it, :func:`encode` reads it)::

  {"normal": [["sep_conv_3x3", 0], ...8 pairs], "normal_concat": [2, 3, 4, 5],
   "reduce": [["max_pool_3x3", 0], ...], "reduce_concat": [2, 3, 4, 5]}

:func:`encode` also takes the dict, DARTS' printed ``Genotype(normal=[('sep_conv_3x3', 0), ...],
normal_concat=range(2, 6), ...)`` string, any object with ``normal``/``reduce`` attributes (the
namedtuple itself), a known name (``'DARTS_V1'``, ``'DARTS_V2'``) or the int array.

**Supernet.** ``SPACE.model(**config)`` is :class:`jaxnas.spaces.darts_net.DartsSupernet`
(search defaults C=16, L=8, cell BNs without affine, BN after pooling), called as
``apply(variables, x, arch)`` with mixture weights of ``SPACE.alpha_shape = (2, 14, 8)`` (rows: the
14 edges of :data:`EDGES`, columns :data:`OPS`) or a discrete ``(2, 8, 2)`` architecture.
``SPACE.discretize(scores)`` turns per-op scores ``(2, 14, 8)`` into a genotype by DARTS' parse.
``SPACE.model(fixed_arch=genotype, ...)`` is the evaluation network
:class:`jaxnas.spaces.darts_net.DartsEvalNet` (defaults C=36, L=20).

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxnas.spaces import darts
  >>> arch = darts.encode('DARTS_V2')
  >>> darts.count_params(arch)   # C=36, L=20, no auxiliary head
  3349342
  >>> net = darts.model(C=4, L=3)
  >>> x = jnp.ones((2, 8, 8, 3))
  >>> alpha = 1e-3 * jax.random.normal(jax.random.key(0), darts.SPACE.alpha_shape)
  >>> variables = net.init(jax.random.key(1), x, alpha)
  >>> net.apply(variables, x, alpha).shape
  (2, 10)
"""

from __future__ import annotations

import ast
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasInputError
from jaxnas.spaces.base import SearchSpace
from jaxnas.spaces.darts_net import (AVG_POOL, DIL3, DIL5, EDGES, INPUT_EDGES, MAX_POOL, NODE_OFFSET,
                                     NONE, NUM_EDGES, NUM_NODES, NUM_OPS, OPS, SEP3, SEP5, SKIP,
                                     DartsEvalNet, DartsSupernet, active_mask, cell_plan,
                                     discrete_params, edge_ops, reduction_layers, to_weights)

ARCH_SHAPE = (2, 2 * NUM_NODES, 2)
ALPHA_SHAPE = (2, NUM_EDGES, NUM_OPS)
CELL_TYPES = ("normal", "reduce")
CONCAT = [2, 3, 4, 5]

#: Genotypes of the DARTS paper (first- and second-order search; ``DARTS`` in its repository is V2).
KNOWN = {
    "DARTS_V1": {
        "normal": [["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["skip_connect", 0],
                   ["sep_conv_3x3", 1], ["skip_connect", 0], ["sep_conv_3x3", 1],
                   ["sep_conv_3x3", 0], ["skip_connect", 2]],
        "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2],
                   ["max_pool_3x3", 0], ["max_pool_3x3", 0], ["skip_connect", 2],
                   ["skip_connect", 2], ["avg_pool_3x3", 0]]},
    "DARTS_V2": {
        "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0],
                   ["sep_conv_3x3", 1], ["sep_conv_3x3", 1], ["skip_connect", 0],
                   ["skip_connect", 0], ["dil_conv_3x3", 2]],
        "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2],
                   ["max_pool_3x3", 1], ["max_pool_3x3", 0], ["skip_connect", 2],
                   ["skip_connect", 2], ["max_pool_3x3", 1]]},
}
KNOWN["DARTS"] = KNOWN["DARTS_V2"]

# ---------------------------------------------------------------- genotypes


def _check_ops(arch) -> np.ndarray:
  """Validates an int array ``(2, 8, 2)``; returns it as int32."""
  a = np.asarray(arch)
  if a.shape != ARCH_SHAPE or not np.issubdtype(a.dtype, np.integer):
    raise JaxnasInputError(
        f"DARTS architecture must be an int array of shape (2, 8, 2) ([cell type][slot] = "
        f"(input node, op)), got shape {a.shape} dtype {a.dtype}")
  for t in range(2):
    for s in range(2 * NUM_NODES):
      j, op = int(a[t, s, 0]), int(a[t, s, 1])
      n = s // 2
      if not 0 <= j <= n + 1:
        raise JaxnasInputError(
            f"DARTS {CELL_TYPES[t]} slot {s} (node {n + 2}) has input node {j}; allowed: "
            f"0..{n + 1}")
      if not 0 <= op < NUM_OPS:
        raise JaxnasInputError(
            f"DARTS op index {op} in {CELL_TYPES[t]} slot {s} out of range; allowed: "
            f"0..{NUM_OPS - 1} ({', '.join(OPS)})")
    for n in range(NUM_NODES):
      if a[t, 2 * n, 0] == a[t, 2 * n + 1, 0]:
        raise JaxnasInputError(
            f"DARTS {CELL_TYPES[t]} node {n + 2} takes input node {int(a[t, 2 * n, 0])} twice; "
            f"its two inputs must be distinct nodes")
  return a.astype(np.int32)


def _gene_list(value, where: str) -> list:
  """``[(op, input), ...]`` (8 pairs) -> ``[(input, op index), ...]``."""
  if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
    raise JaxnasInputError(f"DARTS genotype {where!r} must be a list of 8 [op, input] pairs, got "
                           f"{value!r}")
  if len(value) != 2 * NUM_NODES:
    raise JaxnasInputError(f"DARTS genotype {where!r} needs 8 [op, input] pairs (2 per "
                           f"intermediate node), got {len(value)}: {value!r}")
  out = []
  for pair in value:
    if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
      raise JaxnasInputError(f"DARTS genotype {where!r}: each entry must be an [op, input] pair, "
                             f"got {pair!r}")
    op, j = pair
    if op not in OPS:
      raise JaxnasInputError(f"unknown DARTS op {op!r} in genotype {where!r}; allowed: "
                             f"{', '.join(OPS)}")
    if isinstance(j, bool) or not isinstance(j, (int, np.integer)):
      raise JaxnasInputError(f"DARTS genotype {where!r}: input node of {pair!r} must be an "
                             f"integer, got {j!r}")
    out.append((int(j), OPS.index(op)))
  return out


def _from_mapping(g) -> np.ndarray:
  get = g.get if isinstance(g, dict) else (lambda k, d=None: getattr(g, k, d))
  if isinstance(g, dict):
    extra = sorted(set(g) - {"normal", "normal_concat", "reduce", "reduce_concat"})
    if extra:
      raise JaxnasInputError(f"unknown DARTS genotype key {extra[0]!r}; allowed: normal, "
                             f"normal_concat, reduce, reduce_concat")
  a = np.zeros(ARCH_SHAPE, np.int64)
  for t, name in enumerate(CELL_TYPES):
    genes = get(name)
    if genes is None:
      raise JaxnasInputError(f"DARTS genotype lacks {name!r} (needs normal, reduce and optional "
                             f"*_concat = [2, 3, 4, 5])")
    a[t] = np.asarray(_gene_list(genes, name))
    concat = get(f"{name}_concat")
    if concat is not None:
      try:
        c = [int(v) for v in concat]
      except (TypeError, ValueError):
        c = None
      if c != CONCAT:
        raise JaxnasInputError(f"DARTS genotype {name}_concat must be [2, 3, 4, 5] (every "
                               f"intermediate node), got {concat!r}")
  return _check_ops(a)


def _literal(node):
  """``ast`` literal or ``range(a, b)`` (as DARTS prints concat lists)."""
  if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
      and not node.keywords):
    return list(range(*[ast.literal_eval(a) for a in node.args]))
  return ast.literal_eval(node)


def _from_repr(s: str) -> np.ndarray:
  try:
    tree = ast.parse(s, mode="eval").body
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)
            and tree.func.id == "Genotype" and not tree.args):
      raise ValueError("expected Genotype(normal=..., normal_concat=..., reduce=..., "
                       "reduce_concat=...)")
    g = {kw.arg: _literal(kw.value) for kw in tree.keywords}
  except (SyntaxError, ValueError, TypeError) as e:
    raise JaxnasInputError(f"invalid DARTS Genotype string {s[:80]!r}: {e}") from None
  return _from_mapping(g)


def parse(genotype) -> np.ndarray:
  """Genotype (JSON string, ``Genotype(...)`` string, known name, dict, or object with ``normal`` /
  ``reduce`` attributes) -> discrete architecture ``(2, 8, 2)`` int32."""
  if isinstance(genotype, str):
    s = genotype.strip()
    if s in KNOWN:
      return _from_mapping(KNOWN[s])
    if s.startswith("Genotype("):
      return _from_repr(s)
    try:
      g = json.loads(s)
    except json.JSONDecodeError as e:
      raise JaxnasInputError(
          f"invalid DARTS genotype JSON {s[:80]!r}: {e.msg} (line {e.lineno} column {e.colno}); "
          f"expected {{\"normal\": [[op, input], ...], \"reduce\": [...]}}, a Genotype(...) "
          f"string or one of {', '.join(sorted(KNOWN))}") from None
    if not isinstance(g, dict):
      raise JaxnasInputError(f"DARTS genotype JSON must be an object with 'normal' and 'reduce', "
                             f"got {type(g).__name__}: {s[:80]!r}")
    return _from_mapping(g)
  if isinstance(genotype, dict) or (hasattr(genotype, "normal") and hasattr(genotype, "reduce")):
    return _from_mapping(genotype)
  raise JaxnasInputError(f"cannot read a DARTS genotype from {type(genotype).__name__} "
                         f"{genotype!r}")


def encode(arch) -> np.ndarray:
  """Any single-architecture form -> discrete architecture ``(2, 8, 2)`` int32 (see module doc)."""
  if isinstance(arch, (str, dict)) or (hasattr(arch, "normal") and hasattr(arch, "reduce")):
    return parse(arch)
  try:
    a = np.asarray(arch)
  except (TypeError, ValueError) as e:
    raise JaxnasInputError(f"cannot read a DARTS architecture from {arch!r}: {e}") from None
  return _check_ops(a)


def genotype(arch) -> dict:
  """Discrete architecture -> genotype dict (DARTS' ``Genotype`` fields, JSON types)."""
  a = _check_ops(arch)
  out = {}
  for t, name in enumerate(CELL_TYPES):
    out[name] = [[OPS[int(op)], int(j)] for j, op in a[t]]
    out[f"{name}_concat"] = list(CONCAT)
  return out


def decode(arch) -> str:
  """Discrete architecture ``(2, 8, 2)`` -> genotype JSON string."""
  return json.dumps(genotype(arch))


# ------------------------------------------------------------- sampling, search


def sample(key, n: int):
  """``n`` random genotypes ``(n, 2, 8, 2)`` int32: per intermediate node two distinct inputs
  drawn uniformly among the earlier nodes, ops uniform over the 7 non-``none`` ops (DARTS' random
  search baseline)."""
  k_first, k_second, k_ops = jax.random.split(key, 3)
  m = jnp.arange(2, NUM_NODES + 2)                                       # options per node
  first = jax.random.randint(k_first, (n, 2, NUM_NODES), 0, m)
  second = jax.random.randint(k_second, (n, 2, NUM_NODES), 0, m - 1)
  second = second + (second >= first)
  inputs = jnp.stack([first, second], -1).reshape(n, 2, 2 * NUM_NODES)
  ops = jax.random.randint(k_ops, (n, 2, 2 * NUM_NODES), 1, NUM_OPS)
  return jnp.stack([inputs, ops], -1).astype(jnp.int32)


def mutate(key, arch):
  """One random change (regularised evolution, NASLib's DARTS mutation): in a random cell type and
  slot, either the op becomes another non-``none`` op, or the input becomes another earlier node
  not already feeding that node (op change when no other input exists). Traceable."""
  arch = jnp.asarray(arch, jnp.int32)
  k_t, k_s, k_kind, k_op, k_in = jax.random.split(key, 5)
  t = jax.random.randint(k_t, (), 0, 2)
  s = jax.random.randint(k_s, (), 0, 2 * NUM_NODES)
  node = s // 2
  cur_in, cur_op = arch[t, s, 0], arch[t, s, 1]
  other_in = arch[t, s ^ 1, 0]
  # op: shift by 1..6 within the 7 non-none ops (a 'none' op becomes any real op)
  new_op = 1 + (jnp.maximum(cur_op, 1) - 1 + jax.random.randint(k_op, (), 1, NUM_OPS - 1)) % (
      NUM_OPS - 1)
  # input: the u-th node of {0..node+1} \ {cur_in, other_in} (node choices)
  cand = jnp.arange(NUM_NODES + 1)
  allowed = (cand <= node + 1) & (cand != cur_in) & (cand != other_in)
  u = jax.random.randint(k_in, (), 0, jnp.maximum(node, 1))
  new_in = jnp.argmax(jnp.cumsum(allowed) == u + 1)
  change_input = (jax.random.bernoulli(k_kind)) & (node > 0)
  row = jnp.where(change_input, jnp.stack([new_in, cur_op]), jnp.stack([cur_in, new_op]))
  return arch.at[t, s].set(row.astype(jnp.int32))


def discretize(scores) -> np.ndarray:
  """DARTS' genotype parse of per-op scores ``(2, 14, 8)`` -> discrete architecture ``(2, 8, 2)``.

  For each intermediate node, its incoming edges are ranked by their largest non-``none`` score
  (stable: ties keep the lower input node first) and the top 2 kept, strongest first; each kept
  edge gets its best non-``none`` op (ties: the lower op index). NaN scores are refused.
  """
  s = np.array(scores, np.float64)
  if s.shape != ALPHA_SHAPE:
    raise JaxnasInputError(f"DARTS op scores must have shape (2, 14, 8), got {s.shape}")
  if np.isnan(s).any():
    bad = np.argwhere(np.isnan(s))[0]
    raise JaxnasInputError(
        f"DARTS op scores contain NaN (first at cell type {CELL_TYPES[bad[0]]}, edge {bad[1]}, op "
        f"{OPS[bad[2]]}); cannot discretise")
  real = s[..., 1:]
  out = np.zeros(ARCH_SHAPE, np.int32)
  for t in range(2):
    for n in range(NUM_NODES):
      rows = real[t, NODE_OFFSET[n]:NODE_OFFSET[n] + n + 2]
      strength = rows.max(axis=1)
      order = np.argsort(-strength, kind="stable")[:2]
      for r, j in enumerate(order):
        out[t, 2 * n + r] = (j, 1 + int(np.argmax(rows[j])))
  return out


def model(**config):
  """The configured module: :class:`DartsSupernet`, or :class:`DartsEvalNet` when ``fixed_arch``
  (any genotype form) is given."""
  fixed = config.pop("fixed_arch", None)
  cls = DartsSupernet if fixed is None else DartsEvalNet
  allowed = set(cls.__dataclass_fields__) - {"parent", "name", "fixed_arch"}
  bad = sorted(set(config) - allowed)
  if bad:
    raise JaxnasInputError(f"unknown DARTS {cls.__name__} option {bad[0]!r}; allowed: "
                           f"{', '.join(sorted(allowed | {'fixed_arch'}))}")
  if fixed is None:
    return DartsSupernet(**config)
  a = encode(fixed)
  return DartsEvalNet(fixed_arch=tuple(tuple(tuple(int(v) for v in g) for g in c) for c in a),
                      **config)


# ------------------------------------------------------------- counting


def _np_or_jnp(arch):
  if isinstance(arch, (np.ndarray, list, tuple)):
    return np, np.asarray(arch, np.int64)
  return jnp, jnp.asarray(arch)


def _op_params(C: int, stride: int, bnp: int) -> np.ndarray:
  """Parameters of each op (index by op) on an edge with ``C`` channels."""
  t = np.zeros(NUM_OPS, np.int64)
  for k, ks in ((SEP3, 3), (SEP5, 5)):
    t[k] = 2 * (ks * ks * C + C * C + bnp)
  for k, ks in ((DIL3, 3), (DIL5, 5)):
    t[k] = ks * ks * C + C * C + bnp
  if stride == 2:
    t[SKIP] = C * C + bnp
  return t


def _op_macs(C: int, stride: int, hw: int) -> np.ndarray:
  """Multiply-accumulates of each op producing an ``hw``-pixel output with ``C`` channels."""
  t = np.zeros(NUM_OPS, np.int64)
  for k, ks in ((SEP3, 3), (SEP5, 5)):
    t[k] = 2 * hw * (ks * ks * C + C * C)
  for k, ks in ((DIL3, 3), (DIL5, 5)):
    t[k] = hw * (ks * ks * C + C * C)
  if stride == 2:
    t[SKIP] = hw * C * C
  return t


def _slot_cost(a, xp, tables):
  """Sum over cell types and slots of ``tables[t][stride][op]`` (stride 2 on reduce input edges)."""
  total = 0
  for t in range(2):
    j, op = a[..., t, :, 0], a[..., t, :, 1]
    c1 = xp.asarray(tables[t][0])[op]
    c2 = xp.asarray(tables[t][1])[op]
    total = total + xp.sum(xp.where((j < 2) & (t == 1), c2, c1), axis=-1)
  return total


def _aux_dims(resolution: int):
  p = (resolution // 4 - 5) // 3 + 1
  return p, p - 1


def count_params(arch, C: int = 36, L: int = 20, num_classes: int = 10, auxiliary: bool = False,
                 bn: str = "batch", affine: bool = True, stem_multiplier: int = 3,
                 in_channels: int = 3, **_):
  """Parameters of the discrete network of ``arch`` (BN scale/bias counted, running statistics
  not, as DARTS' ``count_parameters_in_MB``).

  Defaults: the evaluation network (C=36, L=20, affine BNs) without the auxiliary head (DARTS
  reports sizes without it; ``auxiliary=True`` adds it). With the supernet's configuration
  (``affine=False``; ``pool_bn`` adds no parameters) it counts the supernet's parameters that the
  architecture uses. ``arch``: ``(..., 2, 8, 2)``; numpy in -> exact int64, jax in -> float32.
  """
  xp, a = _np_or_jnp(arch)
  bnp = lambda c: 2 * c if (bn != "none" and affine) else 0
  stem_c = stem_multiplier * C
  total = 9 * in_channels * stem_c + (2 * stem_c if bn != "none" else 0)
  plan, c_final = cell_plan(C, L, stem_multiplier)
  tables = [[np.zeros(NUM_OPS, np.int64), np.zeros(NUM_OPS, np.int64)] for _ in range(2)]
  for c_pp, c_p, c, red, _ in plan:
    total += (c_pp + c_p) * c + 2 * bnp(c)        # FactorizedReduce has as many as ReLUConvBN
    t = 1 if red else 0
    tables[t][0] += _op_params(c, 1, bnp(c))
    tables[t][1] += _op_params(c, 2, bnp(c))
  total += c_final * num_classes + num_classes
  if auxiliary:
    c_aux = plan[2 * L // 3][2] * NUM_NODES
    total += c_aux * 128 + 128 * 768 * 4 + 768 * num_classes + num_classes
    total += (2 * 128 + 2 * 768) if bn != "none" else 0
  ops = _slot_cost(a, xp, tables)
  if xp is np:
    return total + ops
  return jnp.float32(total) + ops.astype(jnp.float32)


def count_flops(arch, C: int = 36, L: int = 20, num_classes: int = 10, auxiliary: bool = False,
                resolution: int = 32, convention: str = "macs", stem_multiplier: int = 3,
                in_channels: int = 3, **_):
  """Multiply-accumulates per image of the discrete network's convolutions and linear layers (the
  "multi-adds" DARTS papers report; BN, ReLU and pooling are not counted).

  Stem ``R^2 * 27 * 3C``; each cell's preprocessing ``r^2 (C_pp + C_p) C`` at its input-node
  resolution ``r`` (FactorizedReduce and ReLU-Conv1x1 cost the same); each op at the cell's output
  resolution ``r_o``: sep_conv ``2 r_o^2 (k^2 C + C^2)``, dil_conv ``r_o^2 (k^2 C + C^2)``, skip on
  a stride-2 edge ``r_o^2 C^2``; classifier ``C_final * classes``; auxiliary head (32x32 inputs)
  ``4 C_aux 128 + 4 * 128 * 768 + 768 * classes`` when ``auxiliary``.
  """
  if convention != "macs":
    raise JaxnasInputError(f"unknown FLOP convention {convention!r} for DARTS; allowed: macs")
  xp, a = _np_or_jnp(arch)
  r = resolution
  total = r * r * 9 * in_channels * stem_multiplier * C
  plan, c_final = cell_plan(C, L, stem_multiplier)
  tables = [[np.zeros(NUM_OPS, np.int64), np.zeros(NUM_OPS, np.int64)] for _ in range(2)]
  for c_pp, c_p, c, red, _ in plan:
    total += r * r * (c_pp + c_p) * c
    r_out = r // 2 if red else r
    t = 1 if red else 0
    tables[t][0] += _op_macs(c, 1, r_out * r_out)
    tables[t][1] += _op_macs(c, 2, r_out * r_out)
    r = r_out
  total += c_final * num_classes
  if auxiliary:
    c_aux = plan[2 * L // 3][2] * NUM_NODES
    p, q = _aux_dims(resolution)
    total += p * p * c_aux * 128 + q * q * 4 * 128 * 768 + 768 * q * q * num_classes
  ops = _slot_cost(a, xp, tables)
  if xp is np:
    return total + ops
  return jnp.float32(total) + ops.astype(jnp.float32)


def describe(arch) -> dict:
  """A search result's fields: the genotype (``{"normal": [[op, input], ...8], "normal_concat",
  "reduce", "reduce_concat"}``) and the parameter count (M) of the evaluation network (C=36, 20
  cells)."""
  a = encode(arch)
  return {"genotype": json.loads(decode(a)),
          "params_M": float(count_params(a, C=36, L=20)) / 1e6}


def accuracy(archs, metric: str = "nb301_val"):
  """NAS-Bench-301 surrogate validation accuracy of ``(n, *ARCH_SHAPE)`` architectures (the
  bundled 500 genotypes; NaN for any other)."""
  from jaxnas.benchmarks import nb301
  return nb301.accuracy_of(list(np.asarray(archs).reshape(-1, *ARCH_SHAPE)), metric)


def _metrics() -> tuple:
  from jaxnas.benchmarks.nb301 import METRICS
  return METRICS


SPACE = SearchSpace(
    name="darts",
    arch_shape=ARCH_SHAPE,
    num_archs=None,
    model=model,
    encode=encode,
    decode=decode,
    sample=sample,
    active_mask=active_mask,
    count_params=count_params,
    count_flops=count_flops,
    mutate=mutate,
    alpha_shape=ALPHA_SHAPE,
    discretize=discretize,
    # DARTS' search network: C=16, 8 cells, cell BN without affine parameters, BN after pooling
    search_config=dict(C=16, L=8, affine=False, bn="batch"),
    small_config=dict(C=8, L=5, affine=False, bn="batch"),
    describe=describe,
    metrics=_metrics(),
    accuracy=accuracy,
)

__all__ = ["SPACE", "OPS", "EDGES", "KNOWN", "encode", "decode", "parse", "genotype", "sample",
           "mutate", "discretize", "model", "count_params", "count_flops", "to_weights",
           "edge_ops", "active_mask", "discrete_params", "DartsSupernet", "DartsEvalNet",
           "reduction_layers"]
