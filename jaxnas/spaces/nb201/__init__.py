"""NAS-Bench-201 (Dong & Yang, ICLR 2020; methods-spec §1.1): encodings, counts, the network.

* :mod:`.space`: architecture encodings (arch strings, benchmark indices), sampling, mutation,
  parameter and FLOP counts, and the registered ``SPACE``.
* :mod:`.net`: the network (:class:`~.net.NB201Net`), shared (architecture as input) or discrete.
* :mod:`.layout`: parameter layouts: ``active_mask`` and ``discrete_params``.

The names below are re-exported, so ``from jaxnas.spaces import nb201; nb201.encode(...)`` works.
"""

from jaxnas.spaces.nb201.layout import active_mask, discrete_params
from jaxnas.spaces.nb201.net import (CONV1, CONV3, EDGES, NONE, NUM_EDGES, NUM_OPS, OPS, POOL, SKIP,
                                     NB201Net, check_input)
from jaxnas.spaces.nb201.space import (NUM_ARCHS, SPACE, accuracy, all_archs, count_flops,
                                       count_params, decode, describe, discretize, encode,
                                       from_index, model, mutate, one_hot, parse, sample, to_index)

__all__ = ["SPACE", "NUM_ARCHS", "OPS", "EDGES", "NUM_EDGES", "NUM_OPS", "NONE", "SKIP", "CONV1",
           "CONV3", "POOL", "NB201Net", "check_input", "active_mask", "discrete_params", "parse",
           "encode", "decode", "from_index", "to_index", "all_archs", "sample", "mutate", "one_hot",
           "discretize", "model", "count_params", "count_flops", "describe", "accuracy"]
