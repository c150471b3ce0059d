"""The optax training loop: PyTorch-style SGD, schedule, augmentation, and a tiny run that learns."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnas import data, train
from jaxnas.errors import JaxnasInputError
from jaxnas.spaces import nb201


def _tiny_images(n, res=8, split="train"):
  images, labels = data.load_images("cifar10-bundled", split)
  f = 32 // res
  small = images[:n].reshape(n, res, f, res, f, 3).mean((2, 4))
  return np.round(small).astype(np.uint8), labels[:n]


def _linear_apply(variables, x, train_, rng=None, drop_prob=None):
  return x.reshape(x.shape[0], -1) @ variables["params"]["w"], None, {}


def test_sgd_step_matches_pytorch_semantics():
  # clip_grad_norm_(5) -> d = g + wd * theta -> buf = m * buf + d -> theta -= lr_e * buf, with the
  # epoch's cosine learning rate and the documented data order, written out by hand
  images, labels = _tiny_images(12, res=4)
  w0 = 0.3 * jax.random.normal(jax.random.key(0), (48, 10))
  key = jax.random.key(5)
  bs, steps, epochs, lr, wd, m, clip = 4, 7, 3, 0.5, 1e-2, 0.9, 0.8
  out, hist = train.train(_linear_apply, {"params": {"w": w0}}, (images, labels), steps, key,
                          batch_size=bs, lr=lr, weight_decay=wd, momentum=m, grad_clip=clip,
                          epochs=epochs, crop_padding=0, flip=False, log_every=1)
  x_all = np.asarray(data.normalize(images, "cifar10")).reshape(12, -1)
  loss = lambda w, x, y: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(x @ w, y))
  w, buf = np.asarray(w0, np.float64), np.zeros((48, 10))
  for s in range(steps):
    e = s // 3
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, e), 12))
    idx = perm[(s % 3) * bs:(s % 3 + 1) * bs]
    g = np.asarray(jax.grad(loss)(jnp.asarray(w, jnp.float32), x_all[idx], labels[idx]))
    np.testing.assert_allclose(hist[s]["loss"], float(loss(jnp.asarray(w, jnp.float32),
                                                             x_all[idx], labels[idx])), rtol=1e-4)
    norm = np.sqrt(np.sum(g.astype(np.float64) ** 2))
    g = g * min(1.0, clip / norm)
    buf = m * buf + g + wd * w
    lr_e = 0.5 * lr * (1 + np.cos(np.pi * e / epochs))
    assert abs(hist[s]["lr"] - lr_e) < 1e-6
    w = w - lr_e * buf
  np.testing.assert_allclose(np.asarray(out["params"]["w"]), w, rtol=2e-4, atol=2e-5)


def test_augmentation():
  images, _ = _tiny_images(6, res=8)
  key = jax.random.key(1)
  plain = train.augment(key, jnp.asarray(images), crop_padding=0, flip=False)
  np.testing.assert_allclose(plain, data.normalize(images, "cifar10"), rtol=1e-6, atol=1e-6)
  zero = -np.asarray(data.NORMALIZATIONS["cifar10"][0]) / np.asarray(
      data.NORMALIZATIONS["cifar10"][1])
  norm = np.asarray(data.normalize(images, "cifar10"))
  padded = np.pad(norm, ((0, 0), (2, 2), (2, 2), (0, 0)))
  padded[:, :2], padded[:, -2:], padded[:, :, :2], padded[:, :, -2:] = zero, zero, zero, zero
  out = np.asarray(train.augment(key, jnp.asarray(images), crop_padding=2, flip=True))
  for i in range(6):   # every output is a (possibly mirrored) window of the black-padded image
    cands = [padded[i, a:a + 8, b:b + 8] for a in range(5) for b in range(5)]
    cands += [c[:, ::-1] for c in cands]
    assert min(np.abs(c - out[i]).max() for c in cands) < 1e-5
  cut = np.asarray(train.augment(key, jnp.asarray(images), crop_padding=0, flip=False, cutout=4))
  zeroed = np.all(cut == 0.0, axis=-1) & ~np.all(norm == 0.0, axis=-1)
  assert 0 < zeroed.sum(axis=(1, 2)).max() <= 16 and zeroed.sum(axis=(1, 2)).min() >= 4
  # untouched pixels: the same normalised values (XLA may fuse the normalisation: 1 ulp)
  np.testing.assert_allclose(cut[~zeroed], norm[~zeroed], rtol=1e-6, atol=1e-6)


def test_tiny_network_learns_and_runs_are_reproducible():
  images, labels = _tiny_images(128)
  net = nb201.model(C=8, N=1, fixed_arch="|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+"
                                         "|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|")
  v = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  apply = train.flax_apply(net)
  before = train.evaluate(apply, v, images, labels)
  kw = dict(batch_size=32, lr=0.1, crop_padding=1, eval_data=(images, labels))
  out, hist = train.train(apply, v, (images, labels), 60, jax.random.key(1), **kw)
  assert len(hist) == 15 and hist[-1]["step"] == 60
  assert hist[-1]["loss"] < 0.8 * hist[0]["loss"]
  assert hist[-1]["test_accuracy"] > max(0.3, before["accuracy"] + 0.1)
  # BN running statistics were updated and are what evaluation uses
  assert not np.allclose(out["batch_stats"]["bn_stem"]["var"], 1.0)
  ev = train.evaluate(apply, out, images, labels)
  assert abs(ev["accuracy"] - hist[-1]["test_accuracy"]) < 1e-9
  # the same key repeats the run exactly (the first epoch has the same learning rate whatever the
  # run length); another key does not
  _, h1 = train.train(apply, v, (images, labels), 4, jax.random.key(1), batch_size=32, lr=0.1,
                      crop_padding=1)
  _, h2 = train.train(apply, v, (images, labels), 4, jax.random.key(2), batch_size=32, lr=0.1,
                      crop_padding=1)
  assert h1[0]["loss"] == hist[0]["loss"] and h1[0]["accuracy"] == hist[0]["accuracy"]
  assert h2[0]["loss"] != hist[0]["loss"]


def test_errors_are_reported():
  images, labels = _tiny_images(8, res=4)
  v = {"params": {"w": jnp.zeros((48, 10))}}
  with pytest.raises(JaxnasInputError, match=r"batch size must be an integer in 1..8 .*got 9"):
    train.train(_linear_apply, v, (images, labels), 1, jax.random.key(0), batch_size=9)
  with pytest.raises(JaxnasInputError, match="must be uint8 NHWC"):
    train.train(_linear_apply, v, (images.astype(np.float32), labels), 1, jax.random.key(0),
                batch_size=4)
  with pytest.raises(JaxnasInputError, match="steps must be a positive integer, got 0"):
    train.train(_linear_apply, v, (images, labels), 0, jax.random.key(0), batch_size=4)
  with pytest.raises(JaxnasInputError, match="no auxiliary logits"):
    train.train(_linear_apply, v, (images, labels), 1, jax.random.key(0), batch_size=4,
                aux_weight=0.4)
  nan_apply = lambda v, x, t, r=None, d=None: (_linear_apply(v, x, t)[0] * jnp.nan, None, {})
  with pytest.raises(FloatingPointError, match="training loss became nan by step 2"):
    train.train(nan_apply, v, (images, labels), 3, jax.random.key(0), batch_size=4)
