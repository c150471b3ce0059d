"""DARTS (Liu et al., ICLR 2019; methods-spec §1.2): genotypes, counts and the CIFAR networks.

* :mod:`.space`: the encodings, sampling, mutation, DARTS' parse of op scores and the registered
  ``SPACE`` (its docstring describes the architecture forms and the networks).
* :mod:`.genotypes`: genotype parsing and printing (JSON, ``Genotype(...)``, known names).
* :mod:`.counts`: closed-form parameter and FLOP counts.
* :mod:`.topology`: the op table, cell edges, reduction layers and cell plan, and the conversion
  of architectures to per-edge ops (:func:`edge_ops`) or mixture weights (:func:`to_weights`).
* :mod:`.layers`: pure array layers (depthwise/pointwise convolutions, pooling).
* :mod:`.operations`: the eight operations on parameter trees and the supernet's mixed edge.
* :mod:`.blocks`: parameter declarations, cell preprocessing, stem and head, input checks.
* :mod:`.supernet`: :class:`DartsSupernet`; :mod:`.evalnet`: :class:`DartsEvalNet`.
* :mod:`.layout`: parameter layouts: ``active_mask`` and ``discrete_params``.

The names below are re-exported, so ``from jaxnas.spaces import darts; darts.encode(...)`` works.
"""

from jaxnas.spaces.darts.counts import count_flops, count_params
from jaxnas.spaces.darts.evalnet import DartsEvalNet
from jaxnas.spaces.darts.genotypes import (ARCH_SHAPE, CELL_TYPES, CONCAT, KNOWN, decode, encode,
                                           genotype, parse)
from jaxnas.spaces.darts.layout import active_mask, discrete_params
from jaxnas.spaces.darts.space import (ALPHA_SHAPE, SPACE, describe, discretize, model, mutate,
                                       sample)
from jaxnas.spaces.darts.supernet import DartsSupernet
from jaxnas.spaces.darts.topology import EDGES, OPS, edge_ops, reduction_layers, to_weights

__all__ = ["SPACE", "OPS", "EDGES", "KNOWN", "encode", "decode", "parse", "genotype", "sample",
           "mutate", "discretize", "model", "count_params", "count_flops", "to_weights",
           "edge_ops", "active_mask", "discrete_params", "DartsSupernet", "DartsEvalNet",
           "reduction_layers", "ARCH_SHAPE", "ALPHA_SHAPE", "CELL_TYPES", "CONCAT", "describe"]
