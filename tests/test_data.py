"""Data layer: bundled CIFAR-10 sample, synthetic inputs, tensorflow-datasets failure message."""

import subprocess
import sys

import numpy as np
import pytest

from jaxnas import data
from jaxnas.errors import JaxnasInputError
from tests.conftest import shared_file


def test_bundled_sample_is_real_cifar10_and_matches_shared_file():
  x, y = data.load_images("cifar10-bundled", "train")
  assert x.shape == (512, 32, 32, 3) and x.dtype == np.uint8
  assert y.shape == (512,) and set(np.unique(y)) == set(range(10))
  xt, yt = data.load_images("cifar10-bundled", "test")
  assert xt.shape == (256, 32, 32, 3)
  with np.load(shared_file("cifar10_sample.npz"), allow_pickle=False) as f:
    np.testing.assert_array_equal(x, f["x_train"][:512])
    np.testing.assert_array_equal(yt, f["y_test"][:256])


def test_minibatch_is_deterministic_normalised_and_distinct():
  a = data.minibatch("cifar10-bundled", 64, seed=3)
  b = data.minibatch("cifar10-bundled", 64, seed=3)
  c = data.minibatch("cifar10-bundled", 64, seed=4)
  np.testing.assert_array_equal(a.x, b.x)
  assert not np.array_equal(a.x, c.x)
  assert a.x.shape == (64, 32, 32, 3) and a.x.dtype == np.float32 and a.y.dtype == np.int32
  # no image twice
  flat = np.asarray(a.x).reshape(64, -1)
  assert len({row.tobytes() for row in flat}) == 64
  # normalisation: (x/255 - mean)/std with the standard CIFAR statistics
  raw, _ = data.load_images("cifar10-bundled")
  idx = np.sort(np.random.default_rng(3).choice(512, 64, replace=False))
  mean, std = data.NORMALIZATIONS["cifar10"]
  np.testing.assert_allclose(a.x, (raw[idx] / 255.0 - np.array(mean)) / np.array(std), rtol=1e-5,
                             atol=1e-5)


@pytest.mark.parametrize("kind", ["synthetic", "gaussian", "uniform", "ones"])
def test_synthetic_inputs(kind):
  b = data.minibatch(kind, 16, seed=1, resolution=16)
  assert b.x.shape == (16, 16, 16, 3) and b.y.shape == (16,)
  x = np.asarray(b.x)
  if kind == "ones":
    assert np.all(x == 1)
  elif kind == "uniform":
    assert x.min() >= 0 and x.max() < 1
  else:
    assert abs(x.mean()) < 0.1 and abs(x.std() - 1) < 0.1
  np.testing.assert_array_equal(x, data.minibatch(kind, 16, seed=1, resolution=16).x)


def test_random_labels_differ_from_true_labels():
  a = data.minibatch("cifar10-bundled", 128, seed=0)
  r = data.minibatch("cifar10-bundled", 128, seed=0, random_labels=True)
  np.testing.assert_array_equal(a.x, r.x)
  assert np.mean(np.asarray(a.y) == np.asarray(r.y)) < 0.3


@pytest.mark.parametrize("call, fragment", [
    (lambda: data.minibatch("imagenet"), "unknown dataset 'imagenet'; allowed: cifar10-bundled"),
    (lambda: data.minibatch(batch_size=0), "batch size must be a positive integer, got 0"),
    (lambda: data.minibatch(batch_size=1000), "batch size 1000 exceeds the 512 train images"),
    (lambda: data.minibatch(split="val"), "unknown split 'val'; allowed: train, test"),
    (lambda: data.minibatch(normalization="foo"), "unknown normalization 'foo'"),
])
def test_bad_input_is_named(call, fragment):
  with pytest.raises(JaxnasInputError, match=fragment):
    call()


def test_unprepared_tfds_dataset_fails_with_clear_message(tmp_path):
  # in a subprocess: TensorFlow is imported only on this path, and no network is reachable here
  code = ("from jaxnas import data\n"
          "try:\n"
          f"  data.minibatch('cifar10', 8, data_dir={str(tmp_path)!r})\n"
          "except data.JaxnasInputError as e:\n"
          "  print('ERR', e)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
  assert "ERR tensorflow-datasets dataset 'cifar10' is not prepared in" in out.stdout, out.stderr
  assert "tfds build cifar10" in out.stdout and "cifar10-bundled" in out.stdout


def test_missing_tfds_extra_fails_with_clear_message():
  # tensorflow-datasets is the extra jaxnas[tfds], not part of the default install
  code = ("import sys; sys.modules['tensorflow_datasets'] = None\n"
          "from jaxnas import data\n"
          "try:\n"
          "  data.minibatch('cifar100', 8)\n"
          "except data.JaxnasInputError as e:\n"
          "  print('ERR', e)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
  assert "ERR dataset 'cifar100' is loaded through tensorflow-datasets, which is not installed" \
      in out.stdout, out.stdout + out.stderr
  assert "jaxnas[tfds]" in out.stdout


def test_importing_jaxnas_does_not_import_tensorflow():
  code = ("import sys, jaxnas, jaxnas.data, jaxnas.spaces, jaxnas.proxies, jaxnas.engine\n"
          "jaxnas.proxies.list_proxies()\n"
          "print(sorted(m for m in sys.modules if m.split('.')[0] in "
          "('tensorflow', 'neural_tangents', 'tensorflow_datasets')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == "[]"
