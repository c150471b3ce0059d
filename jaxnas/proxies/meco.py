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

NAS-Bench-101 (HamsterMimi/MeCo ``correlation/NAS_Bench_101.py``; files as of 3f6d16e,
2024-01-23): the script calls ``predictive.find_measures`` with its default measure list, in
which only ``measures/meco.py`` is registered, i.e. **path 2**: the loaded CIFAR batch (256
images) is discarded and replaced by one ``torch.randn(1, 3, 64, 64)`` (global torch RNG). The
model is ``foresight/models/nasbench1.py::Network(spec, stem_out=128, num_stacks=3, num_mods=3,
num_classes=10)`` on the pruned spec with archai/NASBench-PyTorch initialisation (He fan-out
convs, BN 1/0, dense N(0, 0.01)), copied by its ``get_prunable_copy(bn=True)`` and left in train
mode (batch statistics of the one image). Hooks go on every module of ``named_modules()``; its
``nn.ModuleList`` containers are never called, so they fire nothing. Per tensor of
``NB101Model.tap`` (BN output standing for the conv output, as on NB201):

=========================================  ==================================================  =====
tensor (tap site)                          hook events                                         count
=========================================  ==================================================  =====
stem conv / BN output (``stem_bn``)        Conv2d, BatchNorm2d                                 2
stem ReLU output (``stem``)                ReLU, its Sequential, ConvBnRelu                    3
pool before a stack (``downsample``)       MaxPool2d                                           1
projection conv / BN output (``proj_bn``)  Conv2d, BatchNorm2d                                 2
projection ReLU output (``proj``)          ReLU, Sequential, ConvBnRelu (the Projection)       3
vertex conv / BN output (``conv_bn``)      Conv2d, BatchNorm2d                                 2
vertex ReLU output (``conv``)              ReLU, Sequential, ConvBnRelu, Conv3x3/1x1BnRelu     4
max-pool vertex output (``pool``)          MaxPool2d, MaxPool3x3                               2
cell output (``cell``)                     Cell                                                1
classifier output, model output            Linear, Network (one observation: lambda 0)         0
=========================================  ==================================================  =====

The cell's fan-in sums, truncations, concatenation and the in-place ``+=`` of proj_out are not
modules (no events; the in-place add happens after the vertex hooks have read their tensors).
On ``nb101`` both proxies ignore ``batch.x`` and draw their input, one
``N(0, 1)`` image of 64 x 64 with the batch's channels, from the proxy's key; the architecture
runs unrolled (``'tap'`` is in NB101's ``unrolled_only``). The space holds this protocol as data,
``proxy_settings['meco']`` (``hook_events``: the table above; ``gaussian_input``: the shape), so
a space whose reference hooks its own module tree declares its table there.
Unverified: which path produced the paper's NB101 numbers (only path 2 exists for NB101 in the
repository); ``meco_opt`` on NB101 has no reference code (the NB101 script cannot select it): we
apply path 1's channel sampling to the table above, with the same Gaussian input.

Deviations: ``meco_opt`` draws its channel subsets from the proxy's key, one independent subset
per hook event (the reference uses Python's unseeded ``random.sample``, so it is not
reproducible); tensors with fewer than 8 channels (tiny test networks; never in NB201) use all
their channels, with factor 1. NaN/inf values of lambda (not produced here: the correlation
matrix is finite by construction) would count 0, as the reference drops them.
"""

from __future__ import annotations

import functools

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
    vals = _sampled_lambdas(sample_features(y),
                            _event_key(key, TAP_SITES.index(site), block, part), most, channels)
    return jnp.sum(jnp.where(jnp.arange(most) < count, vals, 0.0))
  return tap


def _event_key(key, site_index, block, part):
  """The key of one tapped tensor: ``fold_in(key, site index, block, part)``."""
  return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, site_index), block), part)


def _sampled_lambdas(f, ev, most: int, channels: int):
  """``(most,)``: for hook call j, ``C/k`` times lambda of the ``k = min(channels, C)`` rows of
  ``f`` ``(C, n)`` at ``permutation(fold_in(ev, j), C)[:k]``."""
  c = f.shape[0]
  k = min(channels, c)

  def one(j):
    idx = jax.random.permutation(jax.random.fold_in(ev, j), c)[:k]
    return min_corr_eigenvalue(f[idx]) * (c / k)

  return jax.vmap(one)(jnp.arange(most))


@jax.jit
def _lambda(y):
  return min_corr_eigenvalue(sample_features(y))


@functools.partial(jax.jit, static_argnames=("most", "channels"))
def _opt_lambdas(y, key, site, block, part, most: int, channels: int):
  return jnp.sum(_sampled_lambdas(sample_features(y), _event_key(key, site, block, part), most,
                                  channels))


def events_tap(events):
  """Tap whose sum is MeCo on a network whose reference fires ``events[site]`` hook events per
  tapped tensor (a space's ``proxy_settings['meco']['hook_events']``, e.g. NB101's); one
  compiled lambda per tensor shape, as the unrolled network calls it eagerly."""
  def tap(site, y, block, part):
    del block, part
    return events[site] * _lambda(y)
  return tap


def events_opt_tap(events, key, channels: int = OPT_CHANNELS):
  """Tap whose sum is MeCo_opt with ``events`` as :func:`events_tap`: per hook event, ``C/k``
  lambda of ``k = min(8, C)`` channels sampled without replacement, hook call j of a tensor at
  ``permutation(fold_in(fold_in(key, site index, block, part), j), C)[:k]`` (site index: the
  site's position in ``events``), as :func:`meco_opt_tap` on NB201."""
  sites = list(events)

  def tap(site, y, block, part):
    return _opt_lambdas(y, key, sites.index(site), block, part, most=events[site],
                        channels=channels)
  return tap


def _hook_events(net):
  """The space's hook-event table for MeCo, or None (NB201's own taps, :func:`meco_tap`)."""
  return net.space.proxy_setting("meco", "hook_events")


def _check_network(net, name):
  fields = getattr(net.module, "__dataclass_fields__", {})
  if "tap" not in fields or not (_hook_events(net) is not None or "N" in fields):
    raise JaxnasInputError(f"{name} needs the tensor taps (tap) of the NB201 network or a "
                           f"space's hook-event table; the {net.space.name!r} network has none")


def _input(net, batch, key):
  """``batch.x``, or the space's reference input (``proxy_settings['meco']['gaussian_input']``:
  ``(batch, height, width)`` of N(0, 1) noise with the batch's channels) drawn from ``key``."""
  shape = net.space.proxy_setting("meco", "gaussian_input")
  if shape is None:
    return batch.x
  return jax.random.normal(key, tuple(shape) + batch.x.shape[-1:], batch.x.dtype)


def meco_score(net, variables, x, tap=None):
  """MeCo of ``net`` on inputs ``x`` (NHWC; lambda reads sample 0), or the sum of another ``tap``
  built like :func:`meco_tap` (NB101: :func:`events_tap`). E.g. path 2 of the reference on
  NB201: ``meco_score(net, v, jax.random.normal(key, (1, 64, 64, 3)))``; path 1 on NB101:
  ``meco_score(net, v, images[:1])``. NB101 needs the unrolled network of a concrete
  architecture (``net.module.clone(unrolled=True)``, as the ``'eager'`` executor builds it)."""
  _check_network(net, "MeCo")
  if tap is None:
    events = _hook_events(net)
    tap = meco_tap(net.module.N) if events is None else events_tap(events)
  _, st = net.replace(tap=tap).apply(variables, x, mutable=["intermediates"])
  return sum_probes(st["intermediates"], "tap")


@register("meco", batch_size=BATCH_SIZE, config=CONFIG, requires=("tap",))
def meco(net, variables, batch, key):
  """MeCo: sum over hooked tensors of the min eigenvalue of the channel correlation matrix (Jiang
  et al., NeurIPS 2023).

  Per tensor ``lambda = min eig corrcoef(Y[0] as C x HW)`` (NaN -> 0), counted with the hook
  multiplicity of the reference's model (HamsterMimi/MeCo ``get_score``); train-mode BN, the
  reference's init. NB201: one image (sample 0 of a bigger batch), zero-cost-nas NB201 model.
  NB101: ``batch.x`` ignored, one N(0, 1) 64 x 64 image drawn from ``key`` (the reference's
  NB101 path), nasbench1 model.
  """
  if _hook_events(net) is None:
    del key
    return meco_score(net, variables, batch.x)
  k_in, _ = jax.random.split(key)
  return meco_score(net, variables, _input(net, batch, k_in))


@register("meco_opt", batch_size=BATCH_SIZE, config=CONFIG, requires=("tap",))
def meco_opt(net, variables, batch, key):
  """MeCo_opt: per hooked tensor (C/8) x min eig of the correlation of 8 random channels (Jiang
  et al., NeurIPS 2023).

  As ``meco`` but each hook event samples 8 of its C channels without replacement (from ``key``;
  the reference's ``random.sample`` is unseeded) and scales by C/8. NB101: ``meco``'s Gaussian
  input (the same draw), subsets from the second half of ``split(key)``.
  """
  _check_network(net, "MeCo_opt")
  events = _hook_events(net)
  if events is None:
    return meco_score(net, variables, batch.x, meco_opt_tap(net.module.N, key))
  k_in, k_opt = jax.random.split(key)
  return meco_score(net, variables, _input(net, batch, k_in), events_opt_tap(events, k_opt))
