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


def test_theory_output_directory_is_made_but_not_its_parents(tmp_path, capsys):
  assert cli.main(["theory", "--size", "tiny", "--out", os.path.join(tmp_path, "no", "pe")]) == 2
  assert "does not exist" in capsys.readouterr().err
  assert not os.path.exists(tmp_path / "no")
  (tmp_path / "file").write_text("x")
  assert cli.main(["theory", "--size", "tiny", "--out", str(tmp_path / "file")]) == 2
  assert "is not a directory" in capsys.readouterr().err


def test_theory_writes_after_each_check_and_resumes(tmp_path, monkeypatch, capsys):
  """An interrupted run keeps the completed checks; ``--resume`` runs only the rest."""
  from jaxnas.theory import runner
  calls = []

  def fake(name, value, fail=False):
    def fn(cfg, archs, out_dir):
      calls.append(name)
      if fail:
        raise KeyboardInterrupt  # the run is stopped inside the second check
      with open(os.path.join(out_dir, runner.PLOTS[name][0]), "wb") as f:
        f.write(b"x" * 2000)
      return {f"{name}_figure": value}, {"value": value}
    return fn

  monkeypatch.setitem(runner._CHECK_FNS, "width", fake("width", 1.5))
  monkeypatch.setitem(runner._CHECK_FNS, "linearized", fake("linearized", 2.5, fail=True))
  out = tmp_path / "made"  # jaxnas theory makes the directory
  argv = ["theory", "--size", "tiny", "--out", str(out), "--checks", "width"]
  assert cli.main(argv) == 0
  first = json.loads((out / "theory.json").read_text())
  assert first["completed"] == ["width"] and first["width_figure"] == 1.5
  assert cli.main(argv[:-1] + ["linearized,width", "--resume"]) == 130  # Ctrl-C
  assert calls == ["width", "linearized"]  # width was not run again
  kept = json.loads((out / "theory.json").read_text())
  assert kept["completed"] == ["width"]  # the interrupted check left the file as it was

  monkeypatch.setitem(runner._CHECK_FNS, "linearized", fake("linearized", 2.5))
  assert cli.main(argv[:-1] + ["linearized,width", "--resume"]) == 0
  assert calls == ["width", "linearized", "linearized"]
  obj = json.loads((out / "theory.json").read_text())
  assert sorted(obj["completed"]) == ["linearized", "width"]
  assert obj["width_figure"] == 1.5 and obj["linearized_figure"] == 2.5
  assert obj["details"]["width"] == {"value": 1.5}
  assert "kept from the previous run" in capsys.readouterr().out

  # another configuration (seed) cannot resume from this file
  assert cli.main(argv + ["--resume", "--seed", "3"]) == 2
  assert "another configuration" in capsys.readouterr().err


def test_arch_quantities_match_the_registered_proxies():
  """The theory's per-architecture loop (its own jits, one architecture at a time) gives the
  same NASI estimate and eval-mode NTK trace as ``engine.score`` with the registered ``nasi``
  and ``ntk_trace`` proxies (lax.map over the shared build, diagonal-only kernel)."""
  import numpy as np
  from jaxnas import engine
  from jaxnas.theory import archs, common, config
  cfg = config.TINY
  sample = common.sample_archs(4, cfg.seed)
  q = archs.arch_quantities(cfg, sample)
  batch = common.real_batch(cfg.batch, cfg.resolution, cfg.seed)
  ref = engine.score("nb201", sample, ("nasi", "ntk_trace"), batch, seed=cfg.seed,
                     config=cfg.net(), chunk_size=4)
  np.testing.assert_allclose(q["nasi"], ref["nasi"], rtol=1e-4)
  np.testing.assert_allclose(q["trace_running"], ref["ntk_trace"], rtol=1e-4)
  for mode in archs.MODES:  # spectra of symmetric PSD kernels, float64
    assert np.all(q[f"lambda_min_{mode}"] > -1e-6 * q[f"lambda_max_{mode}"])
    assert np.all(q[f"cond_{mode}"] >= 1)
  r = archs.agnostic_and_accuracy(cfg, sample, q)
  assert -1 <= r["nasi_vs_exact_trace_spearman"] <= 1 and r["num_archs"] == 4
