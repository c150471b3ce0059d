"""jaxnas: training-free neural architecture search in JAX.

Search spaces are pure Flax modules (:mod:`jaxnas.spaces`), proxies are jitted, vmapped functions of
(network, variables, minibatch, key) (:mod:`jaxnas.proxies`), benchmark ground truth and rank metrics
live in :mod:`jaxnas.benchmarks`, data in :mod:`jaxnas.data`.
"""

__version__ = "0.1.0"

from jaxnas.errors import JaxnasInputError
from jaxnas.spaces import Network, SearchSpace, get_space, list_spaces, network

__all__ = ["__version__", "JaxnasInputError", "Network", "SearchSpace", "get_space",
           "list_spaces", "network"]
