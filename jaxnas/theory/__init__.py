"""Numerical checks of the NTK theory behind NASI (Shu et al., ICLR 2022) and HNAS (Shu et al.,
NeurIPS 2022); run them with ``jaxnas theory`` or :func:`jaxnas.theory.runner.run`.

One module per check family: :mod:`identities` (NTK implementations, NASI Eq. 9-11),
:mod:`linearized` (Eq. 4), :mod:`width` (convergence to the analytic infinite-width NTK), :mod:`archs`
(NASI's estimate vs the exact trace, Prop. 2, NTK quantities vs accuracy), :mod:`hnas_bounds`
(HNAS' log-log relations); :mod:`config` holds the run sizes.
"""

from jaxnas.theory.config import CONFIGS, FULL, QUICK, TINY, TheoryConfig

__all__ = ["CONFIGS", "FULL", "QUICK", "TINY", "TheoryConfig"]
