"""The contract every search space fulfils, and the bound network a proxy receives.

A search space is a :class:`SearchSpace`: a NamedTuple of pure functions (in the manner of
``optax.GradientTransformation``), built once in its own subpackage (``nb201/space.py``, ``darts/space.py``,
``nb101/space.py``) and found by its folder in ``jaxnas.spaces``. Architectures are arrays of op indices (their *encoding*),
so one jit-compiled function serves every architecture of a space and ``jax.vmap`` /
``jax.lax.map`` run over a batch of them.

A proxy never sees a space's internals: it gets a :class:`Network` (the space's Flax module, already
configured, and one traced architecture) plus variables, a minibatch and a key.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, NamedTuple, Optional

import flax.linen as nn
import jax
import numpy as np


class SearchSpace(NamedTuple):
  """A search space as a bundle of pure functions.

  Attributes:
    name: registry name, e.g. ``'nb201'`` (the subpackage's folder name).
    arch_shape: shape of one architecture's op-index encoding, e.g. ``(6,)``.
    model: ``model(**config) -> flax.linen.Module``; must build with no arguments (the defaults
      are the space's standard network) and accept ``num_classes`` (the dataset sets it; give the
      module a ``num_classes`` field). The module is called as ``module.apply(variables, x,
      arch)`` with ``x`` NHWC and ``arch`` an op-index array; its fields are the configuration
      ``--config`` may override and the capabilities proxies may use (:meth:`capabilities`).
    encode: any user form (string, index, array) -> canonical op-index ``np.ndarray``; raises
      :class:`jaxnas.errors.JaxnasInputError` naming the bad value.
    decode: op-index array -> canonical string, without ``,`` (the command line separates
      architectures with commas; NB201 uses ``|`` and ``+``).
    sample: ``sample(key, n) -> (n, *arch_shape)`` uniform random architectures.
    active_mask: ``active_mask(params, arch) -> tree`` over ``params``: per leaf a 0/1 value, or an
      array over the leaf's stacked leading axes (one value per stacked layer), 1 where the
      parameter belongs to an operation the architecture uses (the discrete network's).
    count_params: ``count_params(arch, **module_fields)`` -> number of parameters of the discrete
      network; receives every module field as a keyword (end the signature with ``**_``); ``arch``
      may be ``(..., *arch_shape)``, numpy (exact integers out) or jax (float out).
    count_flops: ``count_flops(arch, resolution=, in_channels=, convention=, **module_fields)``
      -> FLOPs of the discrete network per image (same conventions as ``count_params``).
    num_archs: number of architectures when the space is enumerable (then ``to_index`` and
      ``from_index`` are required: sampling by index and ``--archs all`` use them), else None.
    to_index: op-index array(s) -> benchmark index (enumerable spaces), else None.
    from_index: benchmark index(es) -> op-index array(s), else None.
    mutate: ``mutate(key, arch) -> arch`` with one operation changed (for evolution).
    alpha_shape: shape of the supernet's architecture weights (NB201 ``(6, 5)``): the module also
      accepts float weights of this shape as ``arch`` (each edge a weighted sum of its ops).
    discretize: ``discretize(scores) -> arch``: the discrete architecture that per-op scores of
      ``alpha_shape`` select (NB201: argmax per edge; DARTS: top-2 edges per node, no ``none``).
    unrolls: ``model(unrolled=True)`` runs a *concrete* architecture as its discrete network over
      the shared parameter layout (Python loops, only the chosen ops, compiled blocks shared by
      every architecture): the engine's ``'eager'`` executor.
    auto_eager: with ``unrolls``, mode ``'auto'`` may pick the ``'eager'`` executor on CPU (for
      ``cpu_eager`` proxies, or any proxy on a ``masked`` space, when the networks are big). False
      where it measured slower (DARTS): ``'eager'`` then runs only when asked for (or for
      ``unrolled_only``).
    unrolled_only: capabilities only the unrolled build has (NB101, DARTS: ``('relu_probe',)``,
      since their shared builds compute ops an architecture lacks); mode ``'auto'`` scores a
      proxy that needs one with the ``'eager'`` executor (on one device).
    provides: capabilities of the network beyond its module's fields (:meth:`capabilities`),
      e.g. ``('features',)``, ``'nonlinear_readout'`` (the logits are not affine in train-mode BN
      outputs: TE-NAS' NTK is singular otherwise, :mod:`jaxnas.proxies.tenas`); a proxy whose
      ``requires`` names one the space lacks is refused when it is selected
      (:func:`jaxnas.proxies.check_supported`).
    masked: its shared build runs every operation of every architecture (fixed widths and masks,
      no conditionals; NB101), unlike NB201's ``lax.switch``: on CPU, ``auto`` then scores every
      proxy with the ``'eager'`` executor when the networks are big (with ``unrolls``).
    search_config: module overrides of the papers' search supernet (FreeDARTS, TE-NAS), e.g.
      NB201 ``{'C': 16, 'N': 5, 'cell_bn_affine': False, 'bn': 'batch'}``; None: ``model()``.
    small_config: module overrides of a small supernet for NTK-based searches (NASI), whose
      cost grows with the Jacobian; None: :attr:`search_config`.
    compact_params: ``compact_params(params, arch, **module_fields) -> params`` of
      ``model(compact=True)`` for a concrete ``arch`` run unrolled: only the parameters the
      architecture's discrete network has, at their real sizes, with the same logits (NB101:
      4.3M instead of the shared layout's 57M on average); None: the shared layout is already
      compact enough. Used through :meth:`Network.compact` by the routes whose cost grows with
      the parameters differentiated (per-sample gradients: HNAS, TE-NAS' NTK).
    block_shapes: ``block_shapes(x_shape, **module_fields) -> ((in_shape, out_shape), ...)``:
      the network's blocks ``1..L`` in order (block 0 is the stem), each the shapes of its input
      and output for an input batch of ``x_shape`` (NHWC). The module calls ``block_input(h,
      block)`` on each block's input and taps each block's output as ``'stem'`` (block 0) or
      ``'cell'``/``'reduction'`` (``tap(site, h, block, part)``); AZ-NAS (capability
      ``'block_shapes'``) differentiates every block alone through these.
    describe: ``describe(arch) -> dict`` of JSON-able fields naming a search result (NB201:
      ``arch_str``, ``index``, ``params_M``); None: ``{'arch_str': decode(arch)}``.
    metrics: names of the ground-truth metrics of the space's benchmark (e.g.
      ``'cifar10_test200'``), looked up with ``accuracy``.
    accuracy: ``accuracy(archs, metric) -> (n,) float64`` ground truth of ``(n, *arch_shape)``
      architectures, NaN where the benchmark has none; None when the space has no benchmark.
    proxy_settings: what a proxy's reference protocol does differently on this space's
      benchmark, as data ``{proxy: {setting: value}}`` (NB101: epsinas' weights ``(1e-4, 10)``,
      MeCo's Gaussian input and hook-event table); proxies read it with :meth:`proxy_setting`
      and fall back to their NB201 protocol, so no proxy lists spaces by name.
    gained_fields: module fields added after score files were written, each with the value that
      computes what such a file holds (NB101: ``{'weight_init': 'nasbench'}``): a score file
      without the field reads as that value, so its run still resumes
      (:func:`jaxnas.engine.store.comparable`); a field whose absence did something else must not
      be listed.
  """
  name: str
  arch_shape: tuple
  model: Callable[..., nn.Module]
  encode: Callable[[Any], np.ndarray]
  decode: Callable[[Any], str]
  sample: Callable[[jax.Array, int], jax.Array]
  active_mask: Callable[[Any, jax.Array], Any]
  count_params: Callable[..., Any]
  count_flops: Callable[..., Any]
  num_archs: Optional[int] = None
  to_index: Optional[Callable[[Any], Any]] = None
  from_index: Optional[Callable[[Any], Any]] = None
  mutate: Optional[Callable[[jax.Array, jax.Array], jax.Array]] = None
  alpha_shape: Optional[tuple] = None
  discretize: Optional[Callable[[Any], np.ndarray]] = None
  unrolls: bool = False
  auto_eager: bool = True
  unrolled_only: tuple = ()
  provides: tuple = ()
  masked: bool = False
  search_config: Optional[Mapping] = None
  small_config: Optional[Mapping] = None
  compact_params: Optional[Callable[..., Any]] = None
  block_shapes: Optional[Callable[..., tuple]] = None
  describe: Optional[Callable[[Any], dict]] = None
  metrics: tuple = ()
  accuracy: Optional[Callable[[Any, str], np.ndarray]] = None
  proxy_settings: Optional[Mapping] = None
  gained_fields: Optional[Mapping] = None

  def __hash__(self):  # the configuration dicts are not hashable; equal spaces share a name
    return hash(("SearchSpace", self.name))

  def capabilities(self) -> frozenset:
    """What this space offers a proxy or a search method: the fields of its module
    (``relu_probe``, ``tap``, ``gates``, ``bn``, ...: each a hook or a configuration a proxy may
    set), the extra names in ``provides`` (e.g. ``'features'``: the pre-classifier features sown
    as ``intermediates/features``) and what its functions make possible: ``'supernet'``
    (``alpha_shape`` and ``discretize``), ``'enumerable'`` (``num_archs`` with ``to_index`` /
    ``from_index``), ``'mutate'``, ``'benchmark'`` (``accuracy``), ``'unrolled'`` (``unrolls``),
    ``'block_shapes'``. Proxies declare what they use in ``Proxy.requires``, search methods in ``Method.requires``.
    Computed once per space (the module is built to read its fields)."""
    return _capabilities(self)

  def proxy_setting(self, proxy: str, key: str, default=None):
    """``proxy_settings[proxy][key]``: how ``proxy``'s reference runs on this space, or
    ``default`` (the proxy's own protocol) when the space says nothing."""
    return dict((self.proxy_settings or {}).get(proxy) or {}).get(key, default)

  def check(self) -> None:
    """Raises :class:`jaxnas.errors.JaxnasInputError` naming this space and the field when its
    definition breaks the contract above (checked once, by :func:`jaxnas.spaces.get_space`)."""
    _check(self)

  def describe_arch(self, arch) -> dict:
    """The JSON-able fields naming ``arch`` in a search result (:attr:`describe`)."""
    if self.describe is not None:
      return dict(self.describe(arch))
    d = self.decode(arch)
    return {"arch_str": d if isinstance(d, str) else str(d)}

  def supernet_config(self, which: str = "search") -> dict:
    """Module overrides of the space's ``'search'`` supernet or its ``'small'`` one."""
    if which not in ("search", "small"):
      raise ValueError(f"which must be 'search' or 'small', got {which!r}")
    small = self.small_config if which == "small" else None
    return dict(small if small is not None else (self.search_config or {}))


@functools.lru_cache(maxsize=None)
def _check(space: SearchSpace) -> None:
  from jaxnas.errors import JaxnasInputError
  bad = lambda why: JaxnasInputError(f"search space {space.name!r} is misdefined: {why}")
  if space.num_archs is not None and (space.to_index is None or space.from_index is None):
    raise bad(f"num_archs={space.num_archs} (enumerable) needs to_index and from_index; give "
              "both, or num_archs=None for a space that is only sampled")
  if (space.alpha_shape is None) != (space.discretize is None):
    raise bad("alpha_shape and discretize come together (a supernet needs both)")
  try:
    kind, fields = _module_fields(space)
  except Exception as e:  # a user's model function: say which space and why
    raise bad(f"model() must build the standard network without arguments ({e!r})") from e
  if "num_classes" not in fields:
    raise bad(f"its module {kind} has no num_classes field (the dataset sets "
              "it: add `num_classes: int = 10`)")
  if space.unrolls and "unrolled" not in fields:
    raise bad(f"unrolls=True needs an `unrolled` field on {kind}")
  if space.compact_params is not None and not ({"compact", "unrolled"} <= fields):
    raise bad(f"compact_params needs `compact` and `unrolled` fields on {kind}")
  if space.block_shapes is not None and not ({"block_input", "tap"} <= fields):
    raise bad(f"block_shapes needs `block_input` and `tap` fields on {kind}")
  if not set(space.gained_fields or {}) <= fields:
    raise bad(f"gained_fields={dict(space.gained_fields)} names fields its module {kind} lacks")
  if not set(space.unrolled_only) <= set(fields) | set(space.provides):
    raise bad(f"unrolled_only={space.unrolled_only} names capabilities its module lacks")


@functools.lru_cache(maxsize=None)
def _module_fields(space: SearchSpace) -> tuple:
  """(class name, field names) of the space's standard module (built once per space)."""
  module = space.model()
  return type(module).__name__, frozenset(getattr(module, "__dataclass_fields__", {}))


@functools.lru_cache(maxsize=None)
def _capabilities(space: SearchSpace) -> frozenset:
  fields = _module_fields(space)[1]
  derived = {"supernet": space.alpha_shape is not None and space.discretize is not None,
             "enumerable": (space.num_archs is not None and space.to_index is not None
                            and space.from_index is not None),
             "mutate": space.mutate is not None, "benchmark": space.accuracy is not None,
             "unrolled": space.unrolls, "block_shapes": space.block_shapes is not None}
  return (frozenset(f for f in fields if f not in ("parent", "name")) | frozenset(space.provides)
          | frozenset(k for k, v in derived.items() if v))


class Network(NamedTuple):
  """One architecture bound to its space's configured Flax module: what a proxy sees.

  ``arch`` may be a tracer (inside ``vmap``/``lax.map``); ``module`` and ``space`` are static.
  """
  space: SearchSpace
  module: nn.Module
  arch: jax.Array

  def init(self, key, x, **kwargs):
    """Variables for this network on input ``x`` (the same tree for every architecture)."""
    return self.module.init(key, x, self.arch, **kwargs)

  def apply(self, variables, x, **kwargs):
    """Logits ``(B, num_classes)`` (or ``(logits, state)`` with ``mutable=...``)."""
    return self.module.apply(variables, x, self.arch, **kwargs)

  @property
  def unrolled(self) -> bool:
    """Whether this network runs as its discrete network, eagerly (the ``'eager'`` executor):
    then a proxy's Python loops are cheaper than ``lax.map``, which would compile the unrolled
    network once per architecture (:func:`jaxnas.proxies._common.map_rows`)."""
    return bool(getattr(self.module, "unrolled", False)) and not isinstance(self.arch,
                                                                            jax.core.Tracer)

  def replace(self, **module_overrides) -> "Network":
    """The same architecture with module fields overridden, e.g. ``bn='none'``."""
    return self._replace(module=self.module.clone(**module_overrides))

  def active(self, params):
    """0/1 tree over ``params``: 1 for parameters of operations this architecture uses."""
    return self.space.active_mask(params, self.arch)

  def compact(self, variables):
    """``(net, variables)`` with the same logits over only the parameters this architecture's
    discrete network has, at their real sizes (the space's ``compact_params``), when the space
    has them and this network runs unrolled; else ``(self, variables)`` unchanged. Entries left
    out have zero gradient, so per-sample gradients, and the NTK Gram matrices made of them, are
    the same, for a fraction of the memory and passes (NB101: 1 gradient pass instead of 8)."""
    if self.space.compact_params is None or not self.unrolled:
      return self, variables
    params = self.space.compact_params(variables["params"], self.arch, **self.config())
    return self.replace(compact=True), {**variables, "params": params}

  def config(self) -> dict:
    """The module's configuration fields (for counting params/FLOPs)."""
    return {f: getattr(self.module, f) for f in self.module.__dataclass_fields__
            if f not in ("parent", "name")}
