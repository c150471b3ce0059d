"""Genotype parsing and printing for the DARTS space: discrete architectures ``(2, 8, 2)``
(``arch[t, s] = (input node, op index)``) to and from DARTS' ``Genotype`` (JSON, its printed
``Genotype(...)`` string, a dict, the namedtuple or a known name; the formats are described in
:mod:`jaxnas.spaces.darts.space`), with their validation."""

from __future__ import annotations

import ast
import json

import numpy as np

from jaxnas.errors import JaxnasInputError
from jaxnas.spaces.darts.topology import NUM_NODES, NUM_OPS, OPS

ARCH_SHAPE = (2, 2 * NUM_NODES, 2)
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
