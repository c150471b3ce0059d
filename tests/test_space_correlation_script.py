"""experiments/space_correlation.py: which file a proxy's row comes from."""

import csv
import json

import pytest

from tests.conftest import REPO, experiment_script

_PARAMS = REPO / "experiments" / "results" / "darts_correlation" / "scores_params.csv"


@pytest.fixture(scope="module")
def script():
  return experiment_script("space_correlation")


@pytest.fixture(scope="module")
def genotypes():
  with open(_PARAMS, newline="", encoding="utf-8") as f:
    return [r["arch_str"] for r in csv.DictReader(f)][:40]


def _write(path, genotypes, per_proxy):
  with open(path, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(("index", "arch_str", "proxy", "score"))
    for proxy, n in per_proxy.items():
      for i in range(n):
        w.writerow((i, genotypes[i], proxy, repr(float((i * 7919) % 13))))


def test_a_proxy_in_two_files_counts_once_from_the_complete_or_longer(script, genotypes,
                                                                      tmp_path):
  _write(tmp_path / "scores_grad_norm.csv.partial", genotypes, {"grad_norm": 10})
  _write(tmp_path / "scores_grad_norm+snip.csv.partial", genotypes, {"grad_norm": 20, "snip": 20})
  rows = script.correlation_rows(str(tmp_path), [{}], "nb301_val")
  assert [(r["proxy"], r["n"]) for r in rows] == [("grad_norm (partial)", 20),
                                                  ("snip (partial)", 20)]
  _write(tmp_path / "scores_grad_norm.csv", genotypes, {"grad_norm": 5})   # complete wins
  rows = script.correlation_rows(str(tmp_path), [{}], "nb301_val")
  assert [(r["proxy"], r["n"]) for r in rows] == [("grad_norm", 5), ("snip (partial)", 20)]


def test_the_scoring_plan_skips_complete_proxies_and_uses_the_references_batch(script, tmp_path):
  (tmp_path / "scores_grad_norm.csv").write_text("index,arch_str,proxy,score\r\n")
  (tmp_path / "scores_grad_norm.csv.meta.json").write_text(json.dumps(
      {"state": {"complete": True}, "settings": {"proxies": ["grad_norm"]}}))
  ref = tmp_path / "ref.csv"
  ref.write_text("matrix,ops,naslib_grad_norm,naslib_snip,naslib_plain\n")
  plan = script.score_plan("nb101", str(tmp_path), str(ref),
                           only={"grad_norm", "snip", "plain", "epsilon", "aznas"})
  assert [stem for stem, _ in plan] == ["snip+plain", "epsilon"]
  (_, joint), (_, eps) = plan
  assert joint[joint.index("--proxies") + 1] == "snip,plain"
  assert joint[joint.index("--batch-size") + 1] == "32"     # the CSV's reference scores' batch
  assert "--batch-size" not in eps                            # epsinas keeps its own 256
  assert joint[joint.index("--out") + 1] == str(tmp_path / "scores_snip+plain.csv")
  assert "--resume" in joint
  (_, d_snip), (_, d_swap) = script.score_plan("darts", str(tmp_path), str(ref),
                                                only={"snip", "swap"})
  assert d_snip[d_snip.index("--config") + 1] == "C=32,L=8"
  assert d_snip[d_snip.index("--batch-size") + 1] == "32"    # NASLib's NB301 batch too
  assert "--batch-size" not in d_swap                          # no reference column: its own
  # TE-NAS' kappa is round-off on DARTS (Theta 1 = 0): the space lacks nonlinear_readout
  assert [s for s, _ in script.score_plan("darts", str(tmp_path), str(ref),
                                          only={"tenas_ntk_cond", "zico"})] == ["zico"]
  assert [s for s, _ in script.score_plan("nb101", str(tmp_path), str(ref),
                                          only={"tenas_ntk_cond"})] == ["tenas_ntk_cond"]


def test_the_table_reports_each_proxys_batch_from_its_sidecar(script, tmp_path):
  meta = {"run": {"seconds": {"grad_norm": 10.0, "params": 1.0},
                  "modes": {"grad_norm": "map", "params": "vmap"}},
          "settings": {"proxy_settings": {"grad_norm": {"images": 32}, "params": {"images": 1}}}}
  path = tmp_path / "scores_x.csv"
  (tmp_path / "scores_x.csv.meta.json").write_text(json.dumps(meta))
  assert script.cost(str(path), "grad_norm", 5) == dict(executor="map", batch=32,
                                                         seconds_per_arch=2.0)
  assert "batch" not in script.cost(str(path), "params", 5)     # no data: no batch
  row = dict(proxy="grad_norm", n=5, spearman=0.5, kendall=0.4, nonfinite=0, naslib_spearman=None,
             spearman_vs_naslib_scores=None, **script.cost(str(path), "grad_norm", 5))
  assert "| grad_norm | 5 | 32 | 0.500 |  | 0.400 |" in script.markdown([row])


def test_scoring_processes_share_a_compilation_cache(script, monkeypatch, tmp_path):
  """Each `jaxnas score` process gets the persistent compilation cache folder, unless the
  environment names one or the caller asks for none."""
  import subprocess
  seen = []

  class Done:
    returncode = 0

  monkeypatch.setattr(subprocess, "run", lambda argv, env: seen.append(env) or Done())
  monkeypatch.delenv("JAXNAS_COMPILATION_CACHE", raising=False)
  plan = [("a", ["score", "--proxies", "a"]), ("b", ["score", "--proxies", "b"])]
  assert script.run_plan(plan, cache=str(tmp_path)) == 0
  assert [e["JAXNAS_COMPILATION_CACHE"] for e in seen] == [str(tmp_path)] * 2
  assert script.run_plan(plan[:1], cache=None) == 0
  assert "JAXNAS_COMPILATION_CACHE" not in seen[-1]
  monkeypatch.setenv("JAXNAS_COMPILATION_CACHE", "/elsewhere")
  assert script.run_plan(plan[:1], cache=str(tmp_path)) == 0
  assert seen[-1]["JAXNAS_COMPILATION_CACHE"] == "/elsewhere"


def test_the_ensemble_takes_its_members_at_the_batch_it_was_fitted_with(script, tmp_path):
  """nwot at NASLib's batch 32 beside the ensemble's 64 (in batch64/): the ensemble row reads the
  64 one; a data-free member any file; none at that batch, no row."""
  def write(path, name, images):
    path.parent.mkdir(exist_ok=True)
    path.write_text("index,arch_str,proxy,score\r\n")
    (path.parent / (path.name + ".meta.json")).write_text(json.dumps(
        {"run": {}, "settings": {"proxy_settings": {name: {"images": images}}}}))
  write(tmp_path / "scores_nwot.csv", "nwot", 32)
  write(tmp_path / "scores_params.csv", "params", 1)
  assert script.member_file(str(tmp_path), "nwot") is None
  assert script.member_file(str(tmp_path), "params") == str(tmp_path / "scores_params.csv")
  write(tmp_path / "batch64" / "scores_nwot.csv", "nwot", 64)
  assert script.member_file(str(tmp_path), "nwot") == str(tmp_path / "batch64" / "scores_nwot.csv")


def test_the_spaces_own_folder_says_what_it_lacks_wherever_it_is(script, tmp_path):
  ref = tmp_path / "ref.csv"
  ref.write_text("matrix,ops\n")
  own = tmp_path / "nb101_correlation"       # e.g. the main checkout's, named by a worktree lane
  own.mkdir()
  (own / "scores_zico.csv").write_text("index,arch_str,proxy,score\r\n")
  (own / "scores_zico.csv.meta.json").write_text(json.dumps(
      {"state": {"complete": True}, "settings": {"proxies": ["zico"]}}))
  text = script.lacking("nb101", str(own) + "/", str(ref))
  assert text.startswith("\n\nSupported by the space, no complete file yet")
  line, refused = text.strip().split("\n\n")
  todo = line.split(": ", 1)[1].rstrip(".").split(", ")
  assert "zico" not in todo and "tenas_ntk_cond" in todo and "hnas_cond+hnas_trace" in todo
  # the proxies NB101 cannot run, each with what its network lacks; none of them is still "to do"
  assert refused.startswith("Refused by the space") and "zen (features)" in refused
  assert not any(p.split(" (")[0] in todo for p in refused.split(": ", 1)[1].split("), "))
  assert script.lacking("darts", str(own), str(ref)) == ""     # another space's folder
  assert script.lacking("nb101", str(own / "batch64"), str(ref)) == ""


def test_the_refused_line_names_each_proxy_a_space_cannot_run_with_what_it_lacks(script):
  from jaxnas import proxies
  darts = script.refused("darts")
  for name in ("meco", "zen", "tenas_ntk_cond"):
    miss = proxies.missing_capabilities(name, "darts")
    assert miss and f"{name} ({', '.join(miss)})" in darts
  assert "nwot" not in darts and "zico" not in darts          # they run on DARTS
  assert script.refused("nb201") == ""                        # NB201 runs every proxy
