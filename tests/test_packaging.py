"""The README's Quick start, .ci/run and the pinned stack stay consistent."""

import configparser
import re

from tests.conftest import REPO


def quick_start_commands():
  text = (REPO / "README.md").read_text()
  section = text.split("## Quick start", 1)[1]
  block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
  return [ln.strip() for ln in block.splitlines() if ln.strip()]


def test_quick_start_has_exactly_two_commands():
  cmds = quick_start_commands()
  assert len(cmds) == 2
  assert cmds[0].startswith("pip install . ") and "jaxnas quickstart" in cmds[0]
  assert cmds[1].startswith('pip install ".[test]"') and "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command():
  ci = (REPO / ".ci" / "run").read_text().splitlines()
  assert quick_start_commands()[1] in [ln.strip() for ln in ci]


def test_current_stack_without_upper_pins_or_tensorflow():
  """Lower bounds only; neither TensorFlow nor neural-tangents in the default install; the
  accelerator and tfds extras exist."""
  cfg = configparser.ConfigParser()
  cfg.read(REPO / "setup.cfg")
  reqs = [r.strip() for r in cfg["options"]["install_requires"].splitlines() if r.strip()]
  names = {r.split(">")[0].split("=")[0].split("<")[0].strip() for r in reqs}
  assert {"jax", "flax", "optax", "chex", "numpy", "scipy"} <= names
  assert not names & {"tensorflow", "tensorflow-datasets", "neural-tangents", "keras", "jaxlib"}
  for r in reqs:
    assert "<" not in r and "==" not in r, f"upper pin in the default install: {r}"
  assert cfg["options"]["python_requires"] == ">=3.11"
  extras = cfg["options.extras_require"]
  assert "jax[cuda12]" in extras["cuda12"] and "jax[tpu]" in extras["tpu"]
  assert "tensorflow-datasets" in extras["tfds"]


def test_package_data_is_small_and_pickle_free():
  assets = REPO / "jaxnas" / "_assets"
  total = sum(p.stat().st_size for p in assets.glob("*.npz"))
  assert total < 4_000_000
  import numpy as np
  for p in assets.glob("*.npz"):
    with np.load(p, allow_pickle=False) as f:
      for k in f.files:
        assert f[k].dtype != object
