"""Minibatches for scoring: the bundled real CIFAR-10 sample, tensorflow-datasets, synthetic inputs.

Datasets by name:

* ``cifar10-bundled``: 512 training and 256 test images of CIFAR-10 shipped inside the package (the
  leading images of the training batches and of the test batch); works offline.
* ``cifar10``, ``cifar100``: through ``tensorflow_datasets``; they must be prepared in ``data_dir``
  (or downloadable). Otherwise a :class:`JaxnasInputError` says how to prepare them.
* ``synthetic`` (= ``gaussian``), ``uniform``, ``ones``: label-free inputs (NASI's data-agnostic
  check, FreeDARTS' all-ones input); labels are drawn uniformly.

Images are returned NHWC float32, scaled to [0, 1] and normalised per channel; a minibatch is chosen
from the split with a seeded generator, so the same (name, batch size, seed) gives the same images.

Example:
  >>> from jaxnas import data
  >>> b = data.minibatch("cifar10-bundled", batch_size=8, seed=0)
  >>> b.x.shape, b.y.shape, str(b.x.dtype)
  ((8, 32, 32, 3), (8,), 'float32')
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import _assets
from jaxnas.errors import JaxnasInputError, unknown

#: Per-channel statistics on [0, 1] pixels.
NORMALIZATIONS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "zero-cost": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),   # zero-cost-nas
    "nb201": ((125.3 / 255, 123.0 / 255, 113.9 / 255), (63.0 / 255, 62.1 / 255, 66.7 / 255)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}
_REAL = {"cifar10-bundled": 10, "cifar10": 10, "cifar100": 100}
_SYNTHETIC = ("synthetic", "gaussian", "uniform", "ones")
DATASETS = tuple(_REAL) + _SYNTHETIC
SPLITS = ("train", "test")


class Batch(NamedTuple):
  """A minibatch: ``x`` (B, H, W, 3) float32 and ``y`` (B,) int32 labels."""
  x: jax.Array
  y: jax.Array


_DESCRIPTIONS = {
    "cifar10-bundled": "512 train + 256 test real CIFAR-10 images shipped in the package (offline)",
    "cifar10": "CIFAR-10 through tensorflow-datasets (must be prepared or downloadable)",
    "cifar100": "CIFAR-100 through tensorflow-datasets (must be prepared or downloadable)",
    "synthetic": "gaussian N(0, 1) inputs, random labels (same as 'gaussian')",
    "gaussian": "gaussian N(0, 1) inputs, random labels",
    "uniform": "uniform U[0, 1) inputs, random labels",
    "ones": "all-ones inputs (FreeDARTS / synflow), random labels",
}


def describe(name: str) -> str:
  """One line about a dataset name."""
  _check_name(name)
  return _DESCRIPTIONS[name]


def num_classes(name: str) -> int:
  """Number of classes of a dataset (synthetic data pretends 10)."""
  _check_name(name)
  return _REAL.get(name, 10)


def _check_name(name):
  if name not in DATASETS:
    raise unknown("dataset", name, DATASETS)


def _check_split(split):
  if split not in SPLITS:
    raise unknown("split", split, SPLITS)


@functools.lru_cache(maxsize=4)
def _bundled(split: str):
  d = _assets.load_npz("cifar10_bundled.npz")
  return d[f"x_{split}"], d[f"y_{split}"].astype(np.int32)


#: Where tensorflow-datasets downloads each dataset from (probed before a download is tried).
_DOWNLOAD_HOSTS = {"cifar10": "www.cs.toronto.edu", "cifar100": "www.cs.toronto.edu"}


def _reachable(host: str, port: int = 443, timeout: float = 5.0) -> bool:
  """Whether a TCP connection to ``host`` opens within ``timeout`` s (DNS included).

  Without it, an offline ``download_and_prepare`` spends minutes in retries before failing.
  """
  import socket
  import threading
  ok = []

  def probe():
    try:
      socket.create_connection((host, port), timeout=timeout).close()
      ok.append(True)
    except OSError:
      pass

  t = threading.Thread(target=probe, daemon=True)
  t.start()
  t.join(timeout + 1.0)
  return bool(ok)


@functools.lru_cache(maxsize=4)
def _tfds(name: str, split: str, data_dir: Optional[str]):
  try:
    import tensorflow_datasets as tfds  # heavy (TensorFlow): an extra, imported only here
  except ImportError as e:
    raise JaxnasInputError(
        f"dataset {name!r} is loaded through tensorflow-datasets, which is not installed "
        f"({e}); install the extra: pip install 'jaxnas[tfds]' (or use --dataset "
        "cifar10-bundled)") from None
  data_dir = data_dir or os.environ.get("TFDS_DATA_DIR")
  where = data_dir or "~/tensorflow_datasets"
  builder = tfds.builder(name, data_dir=data_dir)
  if not builder.is_prepared():
    host = _DOWNLOAD_HOSTS.get(name, "storage.googleapis.com")
    if os.environ.get("JAXNAS_TFDS_DOWNLOAD", "1") == "0" or not _reachable(host):
      raise JaxnasInputError(
          f"tensorflow-datasets dataset {name!r} is not prepared in {where} and cannot be "
          f"downloaded here ({host} is not reachable"
          f"{' or JAXNAS_TFDS_DOWNLOAD=0' if os.environ.get('JAXNAS_TFDS_DOWNLOAD') == '0' else ''}"
          f"). Prepare it on a machine with internet (`tfds build {name} --data_dir DIR`), point "
          f"--data-dir / TFDS_DATA_DIR at it, or use --dataset cifar10-bundled")
    try:
      builder.download_and_prepare()
    except Exception as e:  # no network, missing extras, ...: say what to do instead
      raise JaxnasInputError(
          f"tensorflow-datasets dataset {name!r} is not prepared in {where} and could not be "
          f"downloaded ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}). "
          f"Prepare it on a machine with internet (`tfds build {name} --data_dir DIR`), point "
          f"--data-dir / TFDS_DATA_DIR at it, or use --dataset cifar10-bundled") from None
  ds = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
  return np.asarray(ds["image"], np.uint8), np.asarray(ds["label"], np.int32)


def load_images(name: str = "cifar10-bundled", split: str = "train",
                data_dir: Optional[str] = None):
  """All images of a real dataset split: ``(uint8 (N, 32, 32, 3), int32 (N,))``."""
  _check_name(name)
  _check_split(split)
  if name == "cifar10-bundled":
    return _bundled(split)
  if name in _SYNTHETIC:
    raise JaxnasInputError(f"dataset {name!r} is synthetic; use minibatch() to draw inputs")
  return _tfds(name, split, data_dir)


def normalize(images_uint8, normalization: str = "cifar10"):
  """uint8 NHWC -> float32 ``(x / 255 - mean) / std``."""
  if normalization not in NORMALIZATIONS:
    raise unknown("normalization", normalization, NORMALIZATIONS)
  mean, std = (np.asarray(v, np.float32) for v in NORMALIZATIONS[normalization])
  return (np.asarray(images_uint8, np.float32) / 255.0 - mean) / std


def synthetic(kind: str, batch_size: int, key, resolution: int = 32, channels: int = 3,
              classes: int = 10) -> Batch:
  """Label-free inputs: ``gaussian`` N(0, 1), ``uniform`` U[0, 1), or ``ones``."""
  _check_batch_size(batch_size)
  kx, ky = jax.random.split(key)
  shape = (batch_size, resolution, resolution, channels)
  if kind in ("gaussian", "synthetic"):
    x = jax.random.normal(kx, shape, jnp.float32)
  elif kind == "uniform":
    x = jax.random.uniform(kx, shape, jnp.float32)
  elif kind == "ones":
    x = jnp.ones(shape, jnp.float32)
  else:
    raise unknown("synthetic input kind", kind, _SYNTHETIC)
  return Batch(x, jax.random.randint(ky, (batch_size,), 0, classes, jnp.int32))


def _check_batch_size(batch_size):
  if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or (
      batch_size < 1):
    raise JaxnasInputError(f"batch size must be a positive integer, got {batch_size!r}")


def minibatch(name: str = "cifar10-bundled", batch_size: int = 64, seed: int = 0,
              split: str = "train", normalization: Optional[str] = None,
              data_dir: Optional[str] = None, resolution: int = 32,
              random_labels: bool = False) -> Batch:
  """One fixed minibatch: ``batch_size`` distinct images drawn with ``seed`` from ``split``.

  Args:
    name: a dataset from :data:`DATASETS`.
    batch_size: number of images.
    seed: seeds the image choice (and synthetic inputs / random labels).
    split: ``'train'`` or ``'test'``.
    normalization: key of :data:`NORMALIZATIONS`; default the dataset's own (CIFAR-10 for the
      bundled sample and synthetic data is left unnormalised).
    data_dir: tensorflow-datasets directory.
    resolution: image size of synthetic inputs.
    random_labels: replace the labels by uniform random ones (label-agnostic checks).

  Returns:
    :class:`Batch` with ``x`` (B, H, W, 3) float32 and ``y`` (B,) int32.
  """
  _check_name(name)
  _check_split(split)
  _check_batch_size(batch_size)
  key = jax.random.key(seed)
  if name in _SYNTHETIC:
    return synthetic(name, batch_size, key, resolution, classes=num_classes(name))
  images, labels = load_images(name, split, data_dir)
  if batch_size > len(images):
    raise JaxnasInputError(
        f"batch size {batch_size} exceeds the {len(images)} {split} images of {name!r}")
  idx = np.sort(np.random.default_rng(seed).choice(len(images), batch_size, replace=False))
  norm = normalization or ("cifar100" if name == "cifar100" else "cifar10")
  x = jnp.asarray(normalize(images[idx], norm))
  y = jnp.asarray(labels[idx], jnp.int32)
  if random_labels:
    y = jax.random.randint(jax.random.fold_in(key, 1), y.shape, 0, num_classes(name), jnp.int32)
  return Batch(x, y)
