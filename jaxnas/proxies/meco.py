"""MeCo: minimum eigenvalue of the feature-map correlation matrices (Jiang, Wang, Bie, "Zero-Shot
Neural Architecture Search with Minimum Eigenvalue of Correlation on Feature Maps", NeurIPS 2023;
code HamsterMimi/MeCo ``correlation/NAS_Bench_201.py::get_score``, methods-spec §11).

The reference registers a forward hook on every module of the zero-cost-nas NB201 model and, for
each hook event with output ``Y``, takes the *first sample* ``F = Y[0]`` reshaped to
``(C, H W)`` (channels are the variables, positions the observations)::

    lambda(F) = min eig( corrcoef(F) ),  NaN/inf entries of the correlation matrix set to 0
    meco      = sum over hook events of lambda                   (higher is better)
    meco_opt  = sum over hook events of (C / 8) lambda(8 channels sampled without replacement)

A zero-variance channel gets an all-zero row and column (diagonal included), so ``lambda`` is 0
for the ``none`` op's zeros, for any tensor with a dead or constant channel, and for tensors
with one position (pooled features, logits: those events contribute nothing).

Which tensors, how often (the hook multiplicity of methods-spec §11.3; a BatchNorm is a positive
per-channel affine map, so ``lambda(BN(z)) = lambda(z)`` and the conv output stands for the three
events of its BN, its ``Sequential`` and its ``ReLUConvBN``): stem output 4 (conv + 3 BN events);
per conv op (cell edges, both reduction convs) the ReLU output 1 and the conv output 4; a skip
edge 1; an avg-pool edge 2; a cell's output 1, plus 1 for the last cell of each stage (its stage
``Sequential``); a reduction's shortcut pool 1, shortcut conv 2 and output 1; the head's BN output
1 and ReLU output 2. We read these tensors from ``NB201Net.tap``.

Protocol (path 1 of the reference, the correlation script): train-mode BN (batch statistics),
PyTorch default initialisation (the caller's variables), one CIFAR training image (batch size
1). With a bigger batch, BN uses the whole batch and lambda reads sample 0 (the reference's
zero-cost-nas path 3). The reference's path 2 (``foresight/pruners/measures/meco.py``) overwrites
the input with one ``randn(1, 3, 64, 64)`` image: call :func:`meco_score` with such an input.

Deviations: ``meco_opt`` draws its channel subsets from the proxy's key, one independent subset
per hook event (the reference uses Python's unseeded ``random.sample``, so it is not
reproducible); tensors with fewer than 8 channels (tiny test networks; never in NB201) use all
their channels, with factor 1. NaN/inf values of lambda (not produced here: the correlation
matrix is finite by construction) would count 0, as the reference drops them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxnas.errors import JaxnasInputError
from jaxnas.proxies.registry import register
from jaxnas.spaces import sum_probes
from jaxnas.spaces.nb201.net import TAP_SITES

#: The reference's batch size (one image).
BATCH_SIZE = 1
#: Train-mode BN; the default (PyTorch) initialisation.
CONFIG = {"bn": "batch"}
#: Channels sampled per hook event by ``meco_opt``.
OPT_CHANNELS = 8
#: Hook events per tapped tensor (``'cell'``: one more for the last cell of a stage).
MULTIPLICITY = {"stem": 4, "relu": 1, "conv": 4, "skip": 1, "pool": 2, "none": 0, "cell": 1,
                "reduction": 1, "shortcut_pool": 1, "shortcut": 2, "head_bn": 1, "head_relu": 2}


def min_corr_eigenvalue(f):
  """Smallest eigenvalue of the Pearson correlation matrix of the rows of ``f`` ``(V, n)``.

  As ``torch.corrcoef`` then NaN/inf -> 0: a row of zero variance gets a zero row and column
  (diagonal included); entries clipped to [-1, 1]. Returns a finite float32 scalar.
  """
  f = f.astype(jnp.float32)
  fc = f - jnp.mean(f, axis=1, keepdims=True)
  cov = jnp.matmul(fc, fc.T, precision=jax.lax.Precision.HIGHEST)
  d = jnp.sqrt(jnp.diagonal(cov))
  inv = jnp.where(d > 0, 1.0 / jnp.where(d > 0, d, 1.0), 0.0)
  p = jnp.clip(cov * inv[:, None] * inv[None, :], -1.0, 1.0)
  lam = jnp.linalg.eigvalsh(0.5 * (p + p.T))[0]
  return jnp.where(jnp.isfinite(lam), lam, 0.0)


def sample_features(y):
  """The first sample of an NHWC tensor as ``(C, H W)`` (the reference's ``Y[0]`` in NCHW)."""
  return y[0].reshape(-1, y.shape[-1]).T


def _events(site, block, N):
  """Hook events of a tapped tensor: a static maximum and a (possibly traced) count."""
  m = MULTIPLICITY[site]
  if site != "cell":
    return m, m
  # one more event for the last cell of its stage (the stage's nn.Sequential)
  return 2, 1 + jnp.asarray((block % (N + 1)) == N, jnp.int32)


def meco_tap(N: int):
  """Tap whose sum over the network is MeCo (``N``: cells per stage)."""
  def tap(site, y, block, part):
    del part
    if MULTIPLICITY[site] == 0:
      return jnp.zeros((), jnp.float32)
    _, count = _events(site, block, N)
    return count * min_corr_eigenvalue(sample_features(y))
  return tap


def meco_opt_tap(N: int, key, channels: int = OPT_CHANNELS):
  """Tap whose sum is MeCo_opt: per hook event, ``C/k`` times lambda of ``k = min(8, C)``
  channels sampled without replacement (a new subset per event, drawn from ``key``)."""
  def tap(site, y, block, part):
    most, count = _events(site, block, N)
    if most == 0:
      return jnp.zeros((), jnp.float32)
    f = sample_features(y)
    c = f.shape[0]
    k = min(channels, c)
    ev = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(
        key, TAP_SITES.index(site)), block), part)

    def one(j):
      idx = jax.random.permutation(jax.random.fold_in(ev, j), c)[:k]
      return min_corr_eigenvalue(f[idx]) * (c / k)

    vals = jax.vmap(one)(jnp.arange(most))
    return jnp.sum(jnp.where(jnp.arange(most) < count, vals, 0.0))
  return tap


def _check_network(net, name):
  fields = getattr(net.module, "__dataclass_fields__", {})
  if "tap" not in fields or "N" not in fields:
    raise JaxnasInputError(f"{name} needs the NB201 network's tensor taps (tap); "
                           f"the {net.space.name!r} network has none")


def meco_score(net, variables, x, tap=None):
  """MeCo of ``net`` on inputs ``x`` (NHWC; lambda reads sample 0), or the sum of another ``tap``
  built like :func:`meco_tap`. E.g. path 2 of the reference:
  ``meco_score(net, v, jax.random.normal(key, (1, 64, 64, 3)))``."""
  _check_network(net, "MeCo")
  tap = meco_tap(net.module.N) if tap is None else tap
  _, st = net.replace(tap=tap).apply(variables, x, mutable=["intermediates"])
  return sum_probes(st["intermediates"], "tap")


@register("meco", batch_size=BATCH_SIZE, config=CONFIG, requires=("tap", "N"))
def meco(net, variables, batch, key):
  """MeCo: sum over hooked tensors of the min eigenvalue of the channel correlation matrix (Jiang
  et al., NeurIPS 2023).

  Per tensor ``lambda = min eig corrcoef(Y[0] as C x HW)`` (NaN -> 0), counted with the hook
  multiplicity of the zero-cost-nas NB201 model (HamsterMimi/MeCo ``get_score``); train-mode BN,
  PyTorch init, one image (sample 0 of a bigger batch).
  """
  del key
  return meco_score(net, variables, batch.x)


@register("meco_opt", batch_size=BATCH_SIZE, config=CONFIG, requires=("tap", "N"))
def meco_opt(net, variables, batch, key):
  """MeCo_opt: per hooked tensor (C/8) x min eig of the correlation of 8 random channels (Jiang
  et al., NeurIPS 2023).

  As ``meco`` but each hook event samples 8 of its C channels without replacement (from ``key``;
  the reference's ``random.sample`` is unseeded) and scales by C/8.
  """
  _check_network(net, "MeCo_opt")
  return meco_score(net, variables, batch.x, meco_opt_tap(net.module.N, key))
