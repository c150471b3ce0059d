"""``jaxnas theory`` at the test suite's size: the identities that must hold exactly do, the JSON
and plots are written, and bad input is refused with one line."""

import json
import os

import pytest

from jaxnas import cli


def test_theory_tiny_identities_hold(tmp_path, capsys):
  code = cli.main(["theory", "--size", "tiny", "--out", str(tmp_path),
                   "--checks", "nt_implementations,identities,linearized"])
  assert code == 0
  obj = json.loads((tmp_path / "theory.json").read_text())
  # three neural-tangents implementations and the library's own J J^T: same kernel (float32)
  assert obj["nt_implementations_max_rel_diff"] < 1e-4
  # NASI Eq. 9: tr(Theta) equals the sum of per-example squared Jacobian norms
  assert obj["trace_identity_max_rel_err"] < 1e-4
  # NASI Eq. 11 (Jensen) is an inequality that holds for every batch
  assert obj["jensen_holds_fraction"] == 1.0
  ident = obj["details"]["identities"]
  assert ident["mean_per_sample_grad_is_batch_grad_max_rel_err"] < 1e-4
  # NASI Eq. 4: the eigen-decomposition prediction is exact for the linearised network
  assert obj["linearized_gd_max_rel_err"] < 1e-5
  assert obj["nonfinite_values"] == 0
  for f in obj["plots"]:
    assert (tmp_path / f).stat().st_size > 1000, f
  assert "trace_identity_max_rel_err" in capsys.readouterr().out


@pytest.mark.parametrize("argv, fragment", [
    (["--checks", "bogus"], "unknown theory check"),
    (["--quick", "--size", "full"], "conflicts"),
])
def test_theory_bad_input(tmp_path, argv, fragment, capsys):
  assert cli.main(["theory", "--out", str(tmp_path)] + argv) == 2
  err = capsys.readouterr().err
  assert fragment in err and len(err.strip().splitlines()) == 1


def test_theory_missing_output_directory(tmp_path, capsys):
  assert cli.main(["theory", "--size", "tiny", "--out", os.path.join(tmp_path, "nope")]) == 2
  assert "does not exist" in capsys.readouterr().err
