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


def test_pinned_stack():
  cfg = configparser.ConfigParser()
  cfg.read(REPO / "setup.cfg")
  reqs = {r.strip() for r in cfg["options"]["install_requires"].splitlines() if r.strip()}
  for pin in ("jax==0.4.23", "jaxlib==0.4.23", "flax>=0.8.0,<0.8.5", "neural-tangents==0.6.5",
              "numpy>=1.24,<2", "scipy>=1.10,<1.13", "tensorflow-datasets==4.9.10"):
    assert pin in reqs
  assert any(r.startswith("optax") and "<=0.2.2" in r for r in reqs)
  assert any(r.startswith("chex") and "<=0.1.86" in r for r in reqs)
  assert cfg["options"]["python_requires"] == ">=3.10,<3.13"


def test_package_data_is_small_and_pickle_free():
  assets = REPO / "jaxnas" / "_assets"
  total = sum(p.stat().st_size for p in assets.glob("*.npz"))
  assert total < 4_000_000
  import numpy as np
  for p in assets.glob("*.npz"):
    with np.load(p, allow_pickle=False) as f:
      for k in f.files:
        assert f[k].dtype != object
