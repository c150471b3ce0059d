"""The method registry, option handling, the result JSON schema and the ``jaxnas search`` CLI."""

import json

import numpy as np
import pytest

from jaxnas import cli, search
from jaxnas.errors import JaxnasInputError
from jaxnas.search.result import SearchResult, write_json
from jaxnas.spaces import darts, nb201

METHODS = ("freedarts", "freenas", "hnas", "nasi", "random", "rea", "tenas")


def test_every_method_is_registered_documented_and_declares_spaces():
  assert set(METHODS) <= set(search.list_methods())
  for name in METHODS:
    m = search.get_method(name)
    assert m.name == name and len(m.doc) > 20, name
    assert "nb201" in m.spaces and set(m.spaces) <= {"nb201", "darts"}
  assert {"nasi", "freedarts"} <= {n for n in METHODS if "darts" in search.get_method(n).spaces}


def test_unknown_method_and_options_are_named():
  with pytest.raises(JaxnasInputError, match="unknown search method 'nope'.*allowed: .*nasi"):
    search.get_method("nope")
  m = search.get_method("nasi")
  with pytest.raises(JaxnasInputError, match="'stepz'.*allowed: .*steps"):
    search.resolve_options(m, {"stepz": 3})
  with pytest.raises(JaxnasInputError, match="'steps'.*integer.*'many'"):
    search.resolve_options(m, {"steps": "many"})
  with pytest.raises(JaxnasInputError, match="'hard'.*true or false"):
    search.resolve_options(m, {"hard": "maybe"})
  with pytest.raises(JaxnasInputError, match="does not support space 'darts'"):
    search.search("tenas", "darts")
  with pytest.raises(JaxnasInputError, match="seed"):
    search.search("random", "nb201", seed=-1, proxy="params")


def test_options_are_coerced_from_strings():
  m = search.get_method("nasi")
  opts = search.resolve_options(m, {"steps": "7", "mu": "1.5", "hard": "false", "nu": 3})
  assert opts["steps"] == 7 and opts["mu"] == 1.5 and opts["hard"] is False and opts["nu"] == 3.0
  assert opts["tau"] == dict(m.defaults)["tau"]


def _fake(space, arch, trace=None):
  return SearchResult("random", space, np.asarray(arch), 1.25, trace or [{"x": float("nan")}],
                      {"proxy": "params"}, 3, {"score": np.float32(2.0)})


def test_json_schema_nb201(tmp_path):
  res = _fake("nb201", nb201.from_index(9930))
  doc = write_json(res, str(tmp_path / "r.json"))
  back = json.loads((tmp_path / "r.json").read_text())
  assert back == doc
  assert back["arch_str"] == nb201.decode(nb201.from_index(9930)) and back["index"] == 9930
  assert back["seconds"] == 1.25 and back["seed"] == 3 and back["method"] == "random"
  assert back["params_M"] == pytest.approx(nb201.count_params(nb201.from_index(9930)) / 1e6)
  assert back["trace"] == [{"x": None}]            # NaN is written as null (JSON has no NaN)
  assert back["extra"] == {"score": 2.0}
  assert res.arch_str == back["arch_str"]


def test_json_schema_darts(tmp_path):
  arch = darts.encode("DARTS_V2")
  doc = write_json(_fake("darts", arch), str(tmp_path / "d.json"))
  g = doc["genotype"]
  assert set(g) == {"normal", "normal_concat", "reduce", "reduce_concat"}
  assert len(g["normal"]) == 8 and len(g["reduce"]) == 8 and g["normal_concat"] == [2, 3, 4, 5]
  assert all(isinstance(op, str) and isinstance(i, int) for op, i in g["normal"])
  assert darts.encode(g).tolist() == arch.tolist()
  assert doc["params_M"] == pytest.approx(darts.count_params(arch, C=36, L=20) / 1e6)
  assert 3.0 < doc["params_M"] < 3.6                 # DARTS_V2 is 3.3 M at C=36, 20 cells


def test_write_json_refuses_missing_directory(tmp_path):
  with pytest.raises(JaxnasInputError, match="does not exist"):
    write_json(_fake("nb201", nb201.from_index(1)), str(tmp_path / "no" / "r.json"))


@pytest.mark.parametrize("argv, pattern", [
    (["--method", "nope"], "unknown search method 'nope'"),
    (["--method", "nasi", "--space", "nope"], "unknown search space 'nope'"),
    (["--method", "random", "--proxy", "nope"], "unknown proxy 'nope'"),
    (["--method", "tenas", "--space", "darts"], "does not support space 'darts'"),
    (["--method", "nasi", "--set", "bogus=1"], "'bogus'"),
    (["--method", "nasi", "--set", "steps"], "KEY=VALUE"),
    (["--method", "freedarts", "--proxy", "params"], "--proxy applies to random and rea"),
    (["--method", "random", "--proxy", "params", "--out", "/nonexistent/dir/r.json"],
     "does not exist"),
])
def test_cli_errors_exit_2_with_one_line(capsys, argv, pattern):
  assert cli.main(["search"] + argv) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and err.startswith("jaxnas: error:")
  assert pattern in err


def test_cli_runs_and_writes_json(tmp_path, capsys):
  out = tmp_path / "r.json"
  argv = ["search", "--method", "random", "--proxy", "params", "--seed", "1", "--out", str(out),
          "--set", "n=30", "--set", 'config={"C": 4, "N": 1}', "--set", "resolution=8"]
  assert cli.main(argv) == 0
  doc = json.loads(out.read_text())
  assert doc["method"] == "random" and doc["seed"] == 1 and doc["config"]["n"] == 30
  assert doc["queries"] == 0                     # training-free: no benchmark accuracy seen
  assert doc["config"]["config"] == {"C": 4, "N": 1}
  assert nb201.encode(doc["arch_str"]).tolist() == doc["arch"]
  assert doc["arch_str"] in capsys.readouterr().out
  assert cli.main(["search", "--method", "nasi", "--options"]) == 0
  assert "steps" in capsys.readouterr().out
