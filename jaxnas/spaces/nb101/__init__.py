"""NAS-Bench-101 (Ying et al., ICML 2019): cell specs, closed-form counts and Flax networks
(methods-spec §13).

* :mod:`.spec`: parsing, pruning, validity, graph hash, vertex channels, padded encoding.
* :mod:`.counts`: closed-form parameter and FLOP counts (NASLib ``params`` / ``flops``).
* :mod:`.net`: the network of one pruned spec (discrete build) and the fixed-shape masked build
  that takes an :class:`~.spec.Encoding` as input.
"""
