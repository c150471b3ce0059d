"""Exact neural tangent kernel quantities of jaxnas networks.

* :mod:`~jaxnas.ntk.empirical`: the empirical NTK by Jacobian contraction or NTK-vector products
  (``backend='jaxnas'``, default; ``'neural_tangents'`` where neural-tangents imports), chunked over
  samples and outputs, correct under batch-statistics BatchNorm (samples coupled).
* :mod:`~jaxnas.ntk.per_sample`: the library's own per-sample gradients, with the TE-NAS
  (``'rows'``), HNAS (``'shares'``) and plain (``'independent'``) semantics.
* :mod:`~jaxnas.ntk.spectrum`: trace norm, eigenvalues, condition number, NASI's Eq. 4 loss curve.
* :mod:`~jaxnas.ntk.stax`: neural-tangents-style ``(init_fn, apply_fn, kernel_fn)`` layers with
  analytic infinite-width NNGP/NTK kernels (Conv, ReLU, AvgPool, Dense, FanOut/FanInSum, ...).
* :mod:`~jaxnas.ntk.infinite`: analytic infinite-width NNGP/NTK of NB201 cell networks built from
  them, and the matching finite network.

neural-tangents is not a dependency; ``backend='neural_tangents'`` imports it on first use.
"""

from jaxnas.ntk.empirical import (BACKENDS, IMPLEMENTATIONS, empirical_ntk, is_coupled,
                                   network_ntk)
from jaxnas.ntk.per_sample import SEMANTICS, gram, network_grads, per_sample_grads, sq_norms
from jaxnas.ntk.spectrum import (condition_number, eigenvalues, linearized_mse_curve, trace,
                                 trace_norm)

__all__ = ["BACKENDS", "IMPLEMENTATIONS", "SEMANTICS", "empirical_ntk", "network_ntk", "is_coupled",
           "per_sample_grads", "network_grads", "gram", "sq_norms", "eigenvalues", "trace",
           "trace_norm", "condition_number", "linearized_mse_curve"]
