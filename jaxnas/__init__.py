"""jaxnas: training-free neural architecture search in JAX.

Search spaces are pure Flax modules (:mod:`jaxnas.spaces`), proxies are jitted, vmapped functions of
(network, variables, minibatch, key) (:mod:`jaxnas.proxies`), benchmark ground truth and rank metrics
live in :mod:`jaxnas.benchmarks`, data in :mod:`jaxnas.data`.
"""

__version__ = "0.2.0"

from jaxnas import _xla

# Measured XLA:CPU defaults, unless the user set XLA_FLAGS (jaxnas._xla); before any computation.
_xla.apply_defaults()
# One OpenBLAS thread (XLA's LAPACK calls), unless the user set a BLAS thread count; before numpy.
_xla.apply_blas_threads()

from jaxnas import _compat  # noqa: E402

# The same random stream on every supported JAX (see jaxnas._compat.use_classic_prng).
_compat.use_classic_prng()
# Opt-in persistent compilation cache (JAXNAS_COMPILATION_CACHE=DIR; see jaxnas._xla).
_xla.apply_compilation_cache()

from jaxnas.errors import JaxnasInputError
from jaxnas.spaces import Network, SearchSpace, get_space, list_spaces, network

__all__ = ["__version__", "JaxnasInputError", "Network", "SearchSpace", "get_space",
           "list_spaces", "network"]
