"""Sizes of a theory run: ``QUICK`` (CI-sized, minutes), ``FULL`` (the README figures), ``TINY``
(the test suite).

Everything random flows from ``seed``: the architecture sample, the data batches, the
initialisations (``fold_in(key(seed), benchmark_index)``, as :mod:`jaxnas.engine`).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from jaxnas.errors import JaxnasInputError


@dataclasses.dataclass(frozen=True)
class TheoryConfig:
  """Sizes of the checks.

  Attributes:
    name: label stored in the JSON.
    C, N, resolution: NB201 network (channels, cells per stage) and input size for the
      per-architecture studies.
    batch: images per batch in the per-architecture studies.
    num_archs: architectures sampled uniformly from NB201 (seeded) for the correlation studies.
    id_batch: batch of the exact-identity checks (NTK implementations, trace identity, Eq. 4).
    id_archs: architectures of the identity checks.
    jensen_batches: batches of ``id_batch`` images in the Jensen check.
    lin_steps: gradient-descent steps of the linearised-training check.
    width_cells: NB201 cells (arch strings or indices) of the width study.
    widths: channel counts of the width study.
    width_seeds: initialisations averaged per width.
    width_batch, width_resolution: inputs of the width study.
    nasi_step: step ``t`` at which NASI's predicted loss is correlated with accuracy.
    hnas_metrics: registered proxies compared with HNAS' M_trace.
    nt_modes: BN modes of the NTK-implementations check.
    nt_builds: network builds of the NTK-implementations check (``'discrete'``: every
      implementation; ``'shared'``: Jacobian contraction, or all with ``nt_all_on_shared``).
    nt_C, nt_resolution: channels and input size of the NTK-implementations check (default
      ``C``, ``resolution``); NTK-vector products hold ``B K`` parameter-sized tangents at once
      (neural-tangents' structured derivatives asked for 196 GB at C=16, 16x16, batch 8), and an
      identity check does not need a large network.
    nt_all_on_shared: also run every NTK implementation through the shared (scan/switch)
      build, not only the discrete one (minutes of compilation on a CPU).
    fast_compile: compile with ``jax_disable_most_optimizations`` (compiles about 2x faster but
      runs the derivative-heavy programs about 10x slower on a CPU: only worth it when each
      program runs once).
    seed: the run's seed.
  """
  name: str
  C: int
  N: int
  resolution: int
  batch: int
  num_archs: int
  id_batch: int
  id_archs: int
  jensen_batches: int
  lin_steps: int
  width_cells: tuple
  widths: tuple
  width_seeds: int
  width_batch: int
  width_resolution: int
  nasi_step: int = 100
  hnas_metrics: tuple = ("grad_norm", "snip", "grasp", "synflow")
  nt_modes: tuple = ("batch", "running")
  nt_builds: tuple = ("discrete", "shared")
  nt_all_on_shared: bool = False
  nt_C: Optional[int] = None
  nt_resolution: Optional[int] = None
  fast_compile: bool = True  # TINY: each program runs once or twice
  seed: int = 0

  def validate(self) -> "TheoryConfig":
    """Returns ``self`` after checking the sizes; raises :class:`JaxnasInputError` if one is bad.

    Integer sizes must be positive, ``resolution`` a divisor of 32 and a multiple of 4,
    ``num_archs`` at least 4, and ``widths`` must hold at least two widths.
    """
    for f in ("C", "N", "resolution", "batch", "num_archs", "id_batch", "id_archs",
              "jensen_batches", "lin_steps", "width_seeds", "width_batch", "width_resolution",
              "nasi_step"):
      v = getattr(self, f)
      if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise JaxnasInputError(f"theory config {f} must be a positive integer, got {v!r}")
    for f in ("nt_C", "nt_resolution"):
      v = getattr(self, f)
      if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
        raise JaxnasInputError(f"theory config {f} must be None or a positive integer, got {v!r}")
    if self.resolution % 4 or 32 % self.resolution:
      raise JaxnasInputError(
          f"theory resolution must be a divisor of 32 and a multiple of 4, got {self.resolution}")
    if self.num_archs < 4:
      raise JaxnasInputError(f"theory num_archs must be at least 4, got {self.num_archs}")
    if len(self.widths) < 2:
      raise JaxnasInputError(f"the width study needs at least two widths, got {self.widths}")
    return self

  def net(self, **overrides) -> dict:
    """NB201 module configuration of the per-architecture studies."""
    return {"C": self.C, "N": self.N, "num_classes": 10, **overrides}


# Cells of the width study: all 3x3 convs; a mixed cell whose pool/skip paths meet (an exact
# ``Aggregate`` node in the stax graph); the best CIFAR-10 cell of NB201 (index 6111).
_CELLS = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|"
          "nor_conv_3x3~2|",
          "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|"
          "avg_pool_3x3~2|",
          6111)

TINY = TheoryConfig(name="tiny", C=4, N=1, resolution=8, batch=8, num_archs=6, id_batch=4,
                    id_archs=2, jensen_batches=2, lin_steps=20, width_cells=_CELLS[1:2],
                    widths=(8, 32), width_seeds=1, width_batch=3, width_resolution=8,
                    nasi_step=20, hnas_metrics=("grad_norm", "snip"), nt_modes=("batch",),
                    nt_builds=("discrete",))
QUICK = TheoryConfig(name="quick", C=8, N=1, resolution=16, batch=16, num_archs=40, id_batch=8,
                     id_archs=2, jensen_batches=4, lin_steps=100, width_cells=_CELLS,
                     widths=(8, 16, 32, 64, 128), width_seeds=2, width_batch=4,
                     width_resolution=8, nt_builds=("discrete",), fast_compile=False)
# FULL: the README run. C=16 as the benchmark network, one cell per stage and 16x16 inputs so that
# the exact NTK of 60 architectures fits in about an hour of this 2-core CPU (32x32 and 160
# architectures would take about four hours).
FULL = TheoryConfig(name="full", C=16, N=1, resolution=16, batch=32, num_archs=60, id_batch=8,
                    id_archs=4, jensen_batches=8, lin_steps=200, width_cells=_CELLS,
                    widths=(8, 16, 32, 64, 128, 256), width_seeds=3, width_batch=4,
                    width_resolution=8, nt_C=8, nt_resolution=8, fast_compile=False)
CONFIGS = {"tiny": TINY, "quick": QUICK, "full": FULL}
