"""The DARTS search space (Liu et al., ICLR 2019; methods-spec §1.2): encodings, sampling, SPACE.

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

**Supernet.** ``SPACE.model(**config)`` is :class:`jaxnas.spaces.darts.supernet.DartsSupernet`
(search defaults C=16, L=8, cell BNs without affine, BN after pooling), called as
``apply(variables, x, arch)`` with mixture weights of ``SPACE.alpha_shape = (2, 14, 8)`` (rows: the
14 edges of :data:`EDGES`, columns :data:`OPS`) or a discrete ``(2, 8, 2)`` architecture.
``SPACE.discretize(scores)`` turns per-op scores ``(2, 14, 8)`` into a genotype by DARTS' parse.
``SPACE.model(fixed_arch=genotype, ...)`` is the evaluation network
:class:`jaxnas.spaces.darts.evalnet.DartsEvalNet` (defaults C=36, L=20).

**ReLU probe** (nwot, swap, tenas_regions, ensemble): ``DartsSupernet.relu_probe``, on the
unrolled network of a concrete genotype only (``unrolled=True``: the engine's ``'eager'`` mode,
which ``'auto'`` picks for these proxies and for no other here); the scanned build refuses it.

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

import json

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasInputError
from jaxnas.benchmarks import nb301
from jaxnas.spaces.base import SearchSpace
from jaxnas.spaces.darts.counts import count_flops, count_params
from jaxnas.spaces.darts.evalnet import DartsEvalNet
from jaxnas.spaces.darts.genotypes import ARCH_SHAPE, CELL_TYPES, decode, encode
from jaxnas.spaces.darts.layout import active_mask
from jaxnas.spaces.darts.supernet import DartsSupernet
from jaxnas.spaces.darts.topology import NODE_OFFSET, NUM_EDGES, NUM_NODES, NUM_OPS, OPS

ALPHA_SHAPE = (2, NUM_EDGES, NUM_OPS)


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


def describe(arch) -> dict:
  """A search result's fields: the genotype (``{"normal": [[op, input], ...8], "normal_concat",
  "reduce", "reduce_concat"}``) and the parameter count (M) of the evaluation network (C=36, 20
  cells)."""
  a = encode(arch)
  return {"genotype": json.loads(decode(a)),
          "params_M": float(count_params(a, C=36, L=20)) / 1e6}


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
    # model(unrolled=True) runs a genotype as its discrete network: mode='eager', which the ReLU
    # probe (nwot, swap, tenas_regions, ensemble) needs; 'auto' never picks it here: it measured
    # no faster than 'map' for the gradient proxies (BENCHMARKS.md) and holds ~12 GB at C=32
    unrolls=True,
    auto_eager=False,
    unrolled_only=("relu_probe",),   # 'auto' scores nwot, swap, tenas_regions, ensemble eagerly
    # DARTS' search network: C=16, 8 cells, cell BN without affine parameters, BN after pooling
    search_config=dict(C=16, L=8, affine=False, bn="batch"),
    small_config=dict(C=8, L=5, affine=False, bn="batch"),
    describe=describe,
    metrics=nb301.METRICS,
    accuracy=nb301.accuracy_of,  # by encoding; NaN for an architecture not in the table
)
