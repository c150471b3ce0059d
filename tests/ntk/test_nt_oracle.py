"""jaxnas' empirical NTK (both routes) and infinite-width kernels equal neural-tangents' (the oracle).

neural-tangents 0.6.5 imports only on jax 0.4.23, so ``.ci/run`` builds a second environment with
that stack, writes neural-tangents' kernels for fixed seeds, parameters and inputs to an NPZ
(``experiments/nt_oracle.py write``) and points ``JAXNAS_NT_ORACLE`` at it; this test recomputes
them with jaxnas on the current stack. CI without the file is a failure; elsewhere the test is
skipped with the command that makes the file.
"""

import os
import sys

import pytest

from tests.conftest import REPO

TOL_F64 = 1e-5   # the bound (reached: ~1e-15 empirical, ~1e-8 infinite-width)
TOL_F32 = 1e-4   # what float32 reaches (~2e-6 measured), with margin


def _oracle_file():
  path = os.environ.get("JAXNAS_NT_ORACLE")
  if path and os.path.exists(path):
    return path
  if os.environ.get("CI"):
    pytest.fail(f"JAXNAS_NT_ORACLE={path!r} names no file: .ci/run must write neural-tangents' "
                "kernels first (experiments/nt_oracle.py write)")
  pytest.skip("no neural-tangents oracle file: run `PYTHONPATH=. ORACLE_ENV/bin/python "
              "experiments/nt_oracle.py write F.npz` in a jax 0.4.23 + neural-tangents 0.6.5 "
              "environment and set JAXNAS_NT_ORACLE=F.npz (.ci/run does both)")


def test_jaxnas_kernels_equal_neural_tangents():
  path = _oracle_file()
  sys.path.insert(0, str(REPO / "experiments"))
  try:
    import nt_oracle
  finally:
    sys.path.pop(0)
  res = nt_oracle.compare(path)
  rows = res["max_rel_diff"]
  # every quantity of both precisions is there: both jaxnas routes, full and diagonal, both
  # infinite-width kernels, and the network outputs
  for prec in ("f64", "f32"):
    for what in ("empirical full jaxnas:jacobian_contraction",
                 "empirical full jaxnas:ntk_vector_products",
                 "empirical traced diagonal jaxnas:jacobian_contraction",
                 "empirical traced diagonal jaxnas:ntk_vector_products",
                 "infinite-width nngp", "infinite-width ntk",
                 "network outputs (same network on both stacks)"):
      assert f"{prec} {what}" in rows, sorted(rows)
  bad = {k: v for k, v in rows.items()
         if v > (TOL_F64 if k.startswith("f64") else TOL_F32)}
  assert not bad, bad
