"""The method registry, option handling, the result JSON schema and the ``jaxnas search`` CLI."""

import json

import numpy as np
import pytest

from jaxnas import cli, search
from jaxnas.errors import JaxnasInputError
from jaxnas.search.result import SearchResult, write_json
from jaxnas.spaces import darts, nb201

METHODS = ("freedarts", "freenas", "hnas", "nasi", "random", "rea", "tenas")


def test_every_method_is_registered_documented_and_its_spaces_follow_from_its_requirements():
  assert set(METHODS) <= set(search.list_methods())
  for name in METHODS:
    m = search.get_method(name)
    assert m.name == name and len(m.doc) > 20, name
    assert "nb201" in m.spaces, name
  spaces_of = {n: set(search.get_method(n).spaces) for n in search.list_methods()}
  # what each space can do decides, not a list kept by the method
  assert spaces_of["random"] >= {"nb201", "darts", "nb101"}
  assert spaces_of["cascade"] >= {"nb201", "darts", "nb101"}
  for n in ("nasi", "freedarts", "freenas"):
    assert spaces_of[n] >= {"nb201", "darts"} and "nb101" not in spaces_of[n], n
  assert spaces_of["tenas"] >= {"nb201"} and not spaces_of["tenas"] & {"darts", "nb101"}
  assert spaces_of["hnas"] >= {"nb201"} and not spaces_of["hnas"] & {"darts", "nb101"}
  assert spaces_of["rea"] >= {"nb201", "darts"} and "nb101" not in spaces_of["rea"]


def test_an_unsupported_space_is_refused_naming_what_it_lacks():
  with pytest.raises(JaxnasInputError,
                     match="'hnas' does not support space 'darts': it needs "
                           "enumerable, which 'darts' lacks; spaces that have it: nb201"):
    search.search("hnas", "darts")
  with pytest.raises(JaxnasInputError, match="'nasi' does not support space 'nb101': it needs "
                                             "supernet"):
    search.search("nasi", "nb101")
  from jaxnas.search import _supernet as S
  from jaxnas.spaces import get_space
  with pytest.raises(JaxnasInputError, match="'freedarts' does not support space 'nb101'"):
    S.check_space(get_space("nb101"), "freedarts")     # a method's function called directly


def test_spaces_own_their_search_supernets():
  from jaxnas.search import _supernet as S
  from jaxnas.spaces import get_space
  nb = get_space("nb201")
  assert S.module(nb).C == 16 and S.module(nb).N == 5 and not S.module(nb).cell_bn_affine
  small = S.module(nb, {"C": 4}, which="small")
  assert (small.C, small.N, small.cell_bn_affine, small.bn) == (4, 1, False, "batch")
  d = get_space("darts")
  assert (S.module(d).C, S.module(d).L, S.module(d, which="small").L) == (16, 8, 5)
  assert get_space("nb101").supernet_config() == {}


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
  with pytest.raises(JaxnasInputError, match="does not support space 'darts': it needs "
                                             "N, cell_bn_affine, which"):
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


def test_json_schema_nb101_and_a_search_on_it(tmp_path, capsys):
  """A space describes its own results: NB101's ``arch_str``, graph hash and params (M); random
  search runs on it (tiny network) through the CLI without a line about NB101 elsewhere."""
  from jaxnas.spaces import get_space
  from jaxnas.spaces.nb101 import spec as nb101_spec
  from jaxnas.spaces.nb101.space import to_spec
  sp = get_space("nb101")
  out = tmp_path / "r.json"
  argv = ["search", "--space", "nb101", "--method", "random", "--proxy", "params", "--out",
          str(out), "--set", "n=4", "--set", "resolution=8", "--set",
          'config={"stem_channels": 8, "num_stacks": 2, "modules_per_stack": 1}']
  assert cli.main(argv) == 0
  doc = json.loads(out.read_text())
  arch = np.asarray(doc["arch"], np.int32)
  assert doc["space"] == "nb101" and sp.decode(arch) == doc["arch_str"]
  assert doc["hash"] == nb101_spec.spec_hash(to_spec(arch))
  assert doc["params_M"] == pytest.approx(float(sp.count_params(arch)) / 1e6)
  printed = capsys.readouterr().out
  assert doc["hash"] in printed and "benchmark accuracy" in printed


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
