"""A small optax training loop for sanity checks of the search spaces' networks.

It follows the DARTS CIFAR evaluation protocol (Liu et al., ICLR 2019, ``train.py``; methods-spec
§1.2) with every piece optional:

* SGD with momentum (PyTorch semantics: ``buf = m * buf + g + wd * theta``; ``theta -= lr * buf``)
  after clipping the loss gradient's global norm (``clip_grad_norm_``), weight decay on every
  parameter: ``optax.chain(clip_by_global_norm, add_decayed_weights, sgd)``;
* per-epoch cosine annealing ``lr_e = lr_min + (lr - lr_min) (1 + cos(pi e / E)) / 2``
  (``CosineAnnealingLR(E)``);
* augmentation: random crop 32 with 4 zero pixels of padding, horizontal flip, normalisation, then
  Cutout (a ``cutout x cutout`` square zeroed at a uniform centre, clipped at the border);
* auxiliary-head loss ``CE + aux_weight * CE_aux`` and drop-path with probability
  ``drop_path * e / E`` at epoch ``e``.

Everything random flows from the ``key`` argument: epoch ``e`` visits the training images in the
order ``permutation(fold_in(key, e))`` (the last incomplete batch is dropped, so every step has the
same shape and one compilation serves the whole run), and step ``s`` draws its augmentation and
drop-path masks from ``fold_in(key, s)``.

A model is given as ``model_apply(variables, x, train, rng, drop_prob) -> (logits, aux_logits or
None, new_state)`` (``new_state``: the updated non-parameter collections, e.g. ``batch_stats``);
:func:`flax_apply` builds one from Flax modules (BatchNorm in batch-statistics mode for training,
running statistics for evaluation).

Example:
  >>> import jax, jax.numpy as jnp
  >>> from jaxnas import data, train
  >>> from jaxnas.spaces import nb201
  >>> net = nb201.model(C=8, N=1, fixed_arch='|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+'
  ...                   '|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|')
  >>> images, labels = data.load_images('cifar10-bundled', 'train')
  >>> variables = net.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  >>> variables, history = train.train(train.flax_apply(net), variables, (images, labels),
  ...                                  steps=80, key=jax.random.key(1), batch_size=64)
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas import data as D
from jaxnas.errors import JaxnasInputError


class TrainState(NamedTuple):
  """Parameters, the other variable collections (BN statistics) and the optimiser state."""
  params: dict
  state: dict
  opt_state: optax.OptState


def flax_apply(module, eval_module=None) -> Callable:
  """``model_apply`` for a Flax module called as ``module.apply(variables, x)``.

  Training calls ``module`` (BatchNorm ``bn='batch'``) with ``batch_stats`` mutable, so running
  statistics are updated; evaluation calls ``eval_module`` (default: ``module`` with
  ``bn='running'`` when it has a ``bn`` field). Auxiliary logits are read from the
  ``intermediates`` collection (``aux_logits``, see ``DartsEvalNet.auxiliary``); a drop-path
  probability is passed as ``drop_prob`` with a ``'dropout'`` rng.
  """
  if eval_module is None:
    eval_module = module.clone(bn="running") if hasattr(module, "bn") else module

  def apply(variables, x, train: bool, rng=None, drop_prob=None):
    kw = {}
    if drop_prob is not None and train:
      kw = dict(drop_prob=drop_prob, rngs={"dropout": rng})
    if not train:
      return eval_module.apply(variables, x), None, {}
    mutable = ["intermediates"] + (["batch_stats"] if "batch_stats" in variables else [])
    logits, new = module.apply(variables, x, mutable=mutable, **kw)
    inter = new.pop("intermediates", {})
    aux = inter.get("aux_logits")
    aux = aux[0] if isinstance(aux, tuple) else aux
    return logits, aux, dict(new)

  return apply


def cosine_lr(lr: float, lr_min: float, epochs: int, steps_per_epoch: int) -> Callable:
  """Step -> learning rate, constant within an epoch, cosine over epochs (annealed to lr_min)."""
  def schedule(step):
    e = jnp.floor_divide(step, steps_per_epoch)
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + jnp.cos(jnp.pi * e / epochs))
  return schedule


def optimizer(lr_schedule, momentum: float = 0.9, weight_decay: float = 3e-4,
              grad_clip: Optional[float] = 5.0) -> optax.GradientTransformation:
  """Clip (global norm) -> + weight decay -> SGD with momentum (PyTorch order)."""
  parts = []
  if grad_clip:
    parts.append(optax.clip_by_global_norm(grad_clip))
  if weight_decay:
    parts.append(optax.add_decayed_weights(weight_decay))
  parts.append(optax.sgd(lr_schedule, momentum=momentum or None))
  return optax.chain(*parts)


def augment(key, images_uint8, normalization: str = "cifar10", crop_padding: int = 4,
            flip: bool = True, cutout: int = 0):
  """uint8 ``(B, H, W, 3)`` -> augmented, normalised float32 batch (torchvision order: crop, flip,
  to [0, 1], normalise, Cutout on the normalised tensor)."""
  b, h, w, _ = images_uint8.shape
  k_crop, k_flip, k_cut = jax.random.split(key, 3)
  x = images_uint8.astype(jnp.float32) / 255.0
  if crop_padding:
    p = crop_padding
    xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    off = jax.random.randint(k_crop, (b, 2), 0, 2 * p + 1)
    x = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, 3)))(xp, off)
  if flip:
    do = jax.random.bernoulli(k_flip, 0.5, (b, 1, 1, 1))
    x = jnp.where(do, x[:, :, ::-1], x)
  mean, std = (jnp.asarray(v, jnp.float32) for v in D.NORMALIZATIONS[normalization])
  x = (x - mean) / std
  if cutout:
    cy = jax.random.randint(k_cut, (b, 1, 1), 0, h)
    cx = jax.random.randint(jax.random.fold_in(k_cut, 1), (b, 1, 1), 0, w)
    yy, xx = jnp.arange(h)[None, :, None], jnp.arange(w)[None, None, :]
    inside = ((yy >= jnp.clip(cy - cutout // 2, 0, h)) & (yy < jnp.clip(cy + cutout // 2, 0, h))
              & (xx >= jnp.clip(cx - cutout // 2, 0, w)) & (xx < jnp.clip(cx + cutout // 2, 0, w)))
    x = jnp.where(inside[..., None], 0.0, x)
  return x


def _cross_entropy(logits, labels):
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def _check_data(images, labels, what):
  images, labels = np.asarray(images), np.asarray(labels)
  if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
    raise JaxnasInputError(f"{what} images must be uint8 NHWC (N, H, W, 3), got shape "
                           f"{images.shape} dtype {images.dtype}")
  if labels.shape != images.shape[:1]:
    raise JaxnasInputError(f"{what} labels must have shape ({images.shape[0]},), got "
                           f"{labels.shape}")
  return images, labels.astype(np.int32)


def make_step(model_apply, tx, images, labels, batch_size: int, steps_per_epoch: int,
              epochs: int, *, normalization="cifar10", crop_padding=4, flip=True, cutout=0,
              aux_weight=0.0, drop_path=0.0):
  """Jitted ``step(state, step, key) -> (state, metrics)`` over the device-resident data."""
  images, labels = jnp.asarray(images), jnp.asarray(labels)
  n = images.shape[0]

  def step(ts: TrainState, s, key):
    epoch = s // steps_per_epoch
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)
    idx = jax.lax.dynamic_slice(perm, ((s % steps_per_epoch) * batch_size,), (batch_size,))
    k = jax.random.fold_in(jax.random.fold_in(key, 1 << 20), s)
    k_aug, k_drop = jax.random.split(k)
    x = augment(k_aug, images[idx], normalization, crop_padding, flip, cutout)
    y = labels[idx]
    dp = (drop_path * epoch / epochs) if drop_path else None

    def loss_fn(params):
      logits, aux, new_state = model_apply({**ts.state, "params": params}, x, True, k_drop, dp)
      loss = _cross_entropy(logits, y)
      total = loss
      if aux_weight:
        if aux is None:
          raise JaxnasInputError("aux_weight > 0 but the model returned no auxiliary logits "
                                 "(build the network with auxiliary=True)")
        total = loss + aux_weight * _cross_entropy(aux, y)
      acc = jnp.mean(jnp.argmax(logits, -1) == y)
      return total, (new_state, loss, acc)

    (total, (new_state, loss, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(ts.params)
    updates, opt_state = tx.update(grads, ts.opt_state, ts.params)
    params = optax.apply_updates(ts.params, updates)
    return TrainState(params, {**ts.state, **new_state}, opt_state), dict(
        loss=loss, total_loss=total, accuracy=acc, grad_norm=optax.global_norm(grads))

  return jax.jit(step)


def evaluate(model_apply, variables, images, labels, batch_size: int = 256,
             normalization: str = "cifar10") -> dict:
  """Cross-entropy and accuracy (evaluation mode, no augmentation) over the whole set."""
  images, labels = _check_data(images, labels, "evaluation")

  @jax.jit
  def f(v, x, y):
    logits = model_apply(v, x, False)[0]
    return (jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, y)),
            jnp.sum(jnp.argmax(logits, -1) == y))

  loss = correct = 0.0
  for i in range(0, len(images), batch_size):
    x = jnp.asarray(D.normalize(images[i:i + batch_size], normalization))
    l, c = f(variables, x, jnp.asarray(labels[i:i + batch_size]))
    loss, correct = loss + float(l), correct + float(c)
  return dict(loss=loss / len(images), accuracy=correct / len(images))


def train(model_apply, variables, data, steps: int, key, *, batch_size: int = 64,
          lr: float = 0.025, lr_min: float = 0.0, momentum: float = 0.9,
          weight_decay: float = 3e-4, grad_clip: Optional[float] = 5.0, epochs: Optional[int] = None,
          normalization: str = "cifar10", crop_padding: int = 4, flip: bool = True,
          cutout: int = 0, aux_weight: float = 0.0, drop_path: float = 0.0,
          eval_data=None, eval_every: Optional[int] = None, log_every: int = 0,
          log_fn: Optional[Callable] = None):
  """Trains ``variables`` for ``steps`` SGD steps; returns ``(variables, history)``.

  Args:
    model_apply: see the module docstring (:func:`flax_apply`).
    variables: initial Flax variables (``params`` plus e.g. ``batch_stats``).
    data: ``(images uint8 (N, H, W, 3), labels (N,))`` training set, kept on the device.
    steps: number of optimisation steps.
    key: PRNG key for data order, augmentation and drop-path.
    batch_size, lr, lr_min, momentum, weight_decay, grad_clip: SGD settings (DARTS: 96, 0.025, 0,
      0.9, 3e-4, 5).
    epochs: length of the cosine (and drop-path) schedule in epochs; default the number of epochs
      the ``steps`` cover.
    normalization, crop_padding, flip, cutout: augmentation (:func:`augment`).
    aux_weight: weight of the auxiliary-head loss (DARTS 0.4).
    drop_path: final drop-path probability (DARTS 0.2), ramped linearly over the epochs.
    eval_data: optional ``(images, labels)`` evaluated every ``eval_every`` steps and at the end.
    log_every: also record the mean training metrics every this many steps (0: once per epoch).
    log_fn: called with each history record (e.g. ``print``).

  Returns:
    The trained variables and a list of records ``{step, epoch, lr, loss, accuracy, ...}`` (training
    metrics averaged since the previous record; ``test_loss``, ``test_accuracy`` at evaluations).

  Raises:
    FloatingPointError: when the training loss becomes NaN or infinite (the step is named).
  """
  images, labels = _check_data(*data, "training")
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
    raise JaxnasInputError(f"steps must be a positive integer, got {steps!r}")
  if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not (
      1 <= batch_size <= len(images)):
    raise JaxnasInputError(f"batch size must be an integer in 1..{len(images)} (the training set "
                           f"size), got {batch_size!r}")
  if normalization not in D.NORMALIZATIONS:
    raise JaxnasInputError(f"unknown normalization {normalization!r}; allowed: "
                           f"{', '.join(D.NORMALIZATIONS)}")
  spe = len(images) // batch_size
  epochs = epochs or math.ceil(steps / spe)
  schedule = cosine_lr(lr, lr_min, epochs, spe)
  tx = optimizer(schedule, momentum, weight_decay, grad_clip)
  params = variables["params"]
  state = {k: v for k, v in variables.items() if k not in ("params", "intermediates")}
  ts = TrainState(params, state, tx.init(params))
  step = make_step(model_apply, tx, images, labels, batch_size, spe, epochs,
                   normalization=normalization, crop_padding=crop_padding, flip=flip,
                   cutout=cutout, aux_weight=aux_weight, drop_path=drop_path)
  every = log_every or spe
  history, acc_metrics = [], []
  for s in range(steps):
    ts, m = step(ts, s, key)
    acc_metrics.append(m)
    last = s + 1 == steps
    if (s + 1) % every == 0 or last:
      mean = {k: float(np.mean([float(a[k]) for a in acc_metrics])) for k in acc_metrics[0]}
      acc_metrics = []
      if not np.isfinite(mean["total_loss"]):
        raise FloatingPointError(f"training loss became {mean['total_loss']} by step {s + 1}")
      rec = dict(step=s + 1, epoch=(s + 1) / spe, lr=float(schedule(s)), **mean)
      if eval_data is not None and (last or (eval_every and (s + 1) % eval_every == 0)):
        ev = evaluate(model_apply, {**ts.state, "params": ts.params}, *eval_data,
                      normalization=normalization)
        rec.update(test_loss=ev["loss"], test_accuracy=ev["accuracy"])
      history.append(rec)
      if log_fn is not None:
        log_fn(rec)
  return {**ts.state, "params": ts.params}, history
