"""Importing jaxnas (package, proxies, NTK and theory modules, the CLI) must not import
neural-tangents or TensorFlow: they cost seconds and ~650 MB and are only needed for NTK work."""

import subprocess
import sys

from tests.conftest import REPO


def test_no_tensorflow_or_neural_tangents_on_import():
  code = (
      "import sys, jaxnas, jaxnas.proxies, jaxnas.ntk, jaxnas.theory, jaxnas.theory.runner\n"
      "from jaxnas.proxies import list_proxies, get_proxy\n"
      "names = list_proxies(); [get_proxy(n) for n in ('ntk_trace', 'nasi', 'hnas_trace')]\n"
      "from jaxnas.cli import build_parser; build_parser()\n"
      "bad = [m for m in ('neural_tangents', 'tensorflow') if m in sys.modules]\n"
      "print('LOADED', bad)\n")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120, check=True)
  assert "LOADED []" in out.stdout, out.stdout + out.stderr
