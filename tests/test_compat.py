"""The one module that bridges JAX releases: the classic random stream and its opt-out."""

import json
import subprocess
import sys

import jax
import numpy as np

import jaxnas  # noqa: F401  (sets the stream)
from tests.conftest import REPO

# jax.random.normal(jax.random.key(0), (3,)) on jax 0.4.23, where the stored results were made
CLASSIC = [1.8160863, -0.48262316, 0.33988908]


def test_importing_jaxnas_keeps_the_classic_stream():
  np.testing.assert_allclose(jax.random.normal(jax.random.key(0), (3,)), CLASSIC, rtol=1e-6)


def _draw(env_value):
  code = ("import json, jaxnas, jax\n"
          "print(json.dumps([float(v) for v in jax.random.normal(jax.random.key(0), (3,))]))")
  env = {"JAXNAS_PRNG": env_value, "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"}
  return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                        timeout=120, env=env)


def test_jaxnas_prng_env_opts_out_and_bad_values_are_named():
  out = _draw("jax")
  assert out.returncode == 0, out.stderr
  drawn = json.loads(out.stdout.strip().splitlines()[-1])
  # JAX's own default differs from the classic stream exactly when its partitionable option is on
  assert (not np.allclose(drawn, CLASSIC, rtol=1e-6)) == _default_is_partitionable()
  bad = _draw("fast")
  assert bad.returncode != 0 and "unknown JAXNAS_PRNG value 'fast'; allowed: classic, jax" \
      in bad.stderr


def _default_is_partitionable() -> bool:
  code = "import jax; print(bool(jax.config.jax_threefry_partitionable))"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
  return out.stdout.strip() == "True"
