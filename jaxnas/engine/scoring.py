"""Scoring many architectures with one compiled function per (proxy, shapes).

The architecture is an input of the network, so a proxy is traced once and run over a chunk of
architectures in one of these ways (``mode``):

* ``'map'``: ``jax.lax.map`` over the chunk, one architecture after another; each edge runs only
  its chosen op (``lax.switch`` stays a conditional), so the arithmetic is the discrete network's.
* ``'vmap'``: ``jax.vmap`` over the chunk; a switch on a batched index becomes a select over *all*
  ops (NB201: 5.6x the multiply-accumulates of the discrete networks) but every op is one batched
  kernel.
* ``'hybrid'``: ``lax.map`` over groups of ``group`` architectures, ``vmap`` inside a group.
* ``'eager'`` (spaces with ``SearchSpace.unrolls``): a Python loop over the chunk; the proxy runs
  eagerly on the network of one *concrete* architecture built unrolled (``unrolled=True``): only
  its chosen ops run, each ReLU-Conv-BN / pool a compiled block shared by every architecture, so
  nothing is compiled per architecture and no op runs inside a loop or conditional body (which
  XLA:CPU runs unfused and single-threaded). Variables are initialised by one compiled function.
* ``'auto'`` (default): ``eager`` for a proxy that needs what only the unrolled network has
  (``SearchSpace.unrolled_only``: the ReLU probe of NB101 and DARTS), on one device. On CPU,
  ``eager`` for a proxy registered ``cpu_eager`` (measured faster
  eagerly), or any proxy on a ``masked`` space (NB101, whose shared build computes every op), when
  the space unrolls (and allows it: ``SearchSpace.auto_eager``, False for DARTS) and the networks
  are big (:class:`_AutoScoreFn`). Otherwise it
  traces the proxy once and looks for conditionals; without any, ``vmap`` costs nothing extra
  and is used; with them, the mode measured fastest on the backend (:data:`AUTO_BRANCHING`, see
  BENCHMARKS.md): ``map`` on CPU (XLA:CPU runs one architecture's chosen ops; the select's 5.6x
  arithmetic costs more than the loop); ``vmap`` on GPU (an H100 is bound by per-iteration
  launch and synchronisation overhead in ``map``: grad_norm 19.7 ms/arch with ``vmap`` vs 33.2
  with ``map``, nwot 2.2 vs 7.8). On a space that unrolls, a compiled program that XLA's memory
  analysis says needs more than the device has runs ``eager`` instead (:class:`FitScoreFn`;
  GraSP through ``linearize`` on the DARTS supernet: 61.7 GiB in ``map``, 10.7 GiB eagerly).

Each architecture's variables are initialised inside the compiled function from
``fold_in(key, benchmark_index)``, as float32 draws also for proxies that run in float64
(:func:`jaxnas.spaces.ops.float32_draws`), so every proxy that takes these variables sees the same
network, and a score depends only on (architecture, seed, batch), never on
chunking, order, mode or device count. With several devices the chunk is split over a 1-D mesh
(:mod:`jaxnas.engine.sharding`).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterator, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas._compat import enable_x64, jaxpr_as_fun
from jaxnas.data import Batch
from jaxnas.engine import memory, sharding
from jaxnas.errors import JaxnasInputError, unknown
from jaxnas.proxies import (Proxy, apply_pooled, check_supported, expand, get_proxy, is_pooled,
                            joint)
from jaxnas.spaces import Network, SearchSpace, get_space, ops

MODES = ("auto", "map", "vmap", "hybrid", "eager")
#: Mode ``'auto'`` picks for proxies whose traced computation branches (``lax.cond``/``switch``),
#: per backend platform, by measurement (experiments/bench_throughput.py, BENCHMARKS.md).
#: ``'eager'`` falls back to :data:`AUTO_NOT_UNROLLED` on spaces that do not unroll.
AUTO_BRANCHING = {"cpu": "eager", "gpu": "vmap", "cuda": "vmap", "rocm": "vmap", "tpu": "vmap"}
AUTO_NOT_UNROLLED = "map"
#: Forward FLOPs per minibatch (mean over the first chunk's architectures) from which ``'auto'``
#: runs a branching proxy eagerly on CPU: below it, the per-operation dispatch of the eager
#: executor costs more than compiling the ``map`` program (experiments/bench_executors.py).
EAGER_MIN_FLOPS = 1e9
#: Architectures per group in ``'hybrid'`` mode when not given.
DEFAULT_GROUP = 4


def x64_context(proxy: Proxy):
  """``enable_x64`` for proxies that need float64 (synflow), else a no-op context."""
  if proxy.x64:
    return enable_x64()
  return contextlib.nullcontext()


def module_for(space: SearchSpace, proxy: Proxy, config: Optional[dict] = None):
  """The space's module with the caller's configuration and then the proxy's overrides."""
  cfg = dict(config or {})
  cfg.update(dict(proxy.config))
  return space.model(**cfg)


def _has_conditional(jaxpr) -> bool:
  """Whether a jaxpr (or any jaxpr nested in it) contains a ``cond`` (``lax.cond``/``switch``)."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "cond":
      return True
    for v in eqn.params.values():
      for sub in (v if isinstance(v, (tuple, list)) else (v,)):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns") and _has_conditional(inner):
          return True
  return False


def resolve_mode(mode: str, branches: bool, platform: str, unrolls: bool = False) -> str:
  """The concrete mode for ``mode`` (``'auto'`` resolved by branching, backend platform and
  whether the space unrolls)."""
  if mode != "auto":
    return mode
  if not branches:
    return "vmap"
  m = AUTO_BRANCHING.get(platform, "map")
  return m if (m != "eager" or unrolls) else AUTO_NOT_UNROLLED


class ScoreFn:
  """A compiled scorer ``fn(archs (n, *arch_shape), ids (n,), batch, key) -> (n,) scores``.

  ``info`` holds what tracing decided: ``mode`` (resolved), ``branches`` (the proxy's computation
  contains conditionals), ``devices``, ``group``. ``n`` must be a multiple of ``multiple``.
  """

  #: Whether a short last chunk is padded to the compiled size (compiled scorers); the eager
  #: executor scores any number of architectures, so padding would be wasted work.
  pads = True

  def __init__(self, jitted, info: dict, multiple: int):
    self.jitted, self.info, self.multiple = jitted, info, multiple

  def __call__(self, archs, ids, batch, key):
    return self.jitted(archs, ids, batch, key)

  def lower(self, archs, ids, batch, key):
    """The jitted scorer lowered for these arguments (``jax.stages.Lowered``: HLO, compile)."""
    return self.jitted.lower(archs, ids, batch, key)


def make_score_fn(space: SearchSpace, proxy: Proxy, config: Optional[dict] = None,
                  mode: str = "map", *, group: Optional[int] = None,
                  devices=None) -> ScoreFn:
  """Jitted ``fn(archs (n, *arch_shape), ids (n,), batch, key) -> (n,) scores``.

  ``ids`` (e.g. benchmark indices) seed each architecture's initialisation: ``fold_in(key, id)``.
  Scorers are cached by their arguments, so repeated :func:`score` calls (a search loop, resumed
  runs in one process) trace and compile once.

  Args:
    space, proxy, config: what to score (``config``: module configuration, e.g. ``{'C': 8}``).
    mode: ``'auto'``, ``'map'``, ``'vmap'`` or ``'hybrid'`` (module docstring).
    group: architectures per ``vmap`` group in ``'hybrid'`` mode (default 4).
    devices: ``None`` (one device, the default placement), an int (the first n local devices) or a
      device list; with more than one, ``n`` is split over them (``shard_map`` on a 1-D mesh).

  Returns:
    A :class:`ScoreFn`; ``n`` must be a multiple of ``fn.multiple`` (devices x group).
  """
  if mode not in MODES:
    raise unknown("scoring mode", mode, MODES)
  check_supported([proxy], space)   # what the proxy needs from the network, before tracing
  group = DEFAULT_GROUP if group is None else int(group)
  if group < 1:
    raise JaxnasInputError(f"group must be a positive integer, got {group}")
  devs = None if devices is None else tuple(sharding.resolve_devices(devices))
  cfg = tuple(sorted((config or {}).items()))
  try:
    return _cached_score_fn(space, proxy, cfg, mode, group, devs)
  except TypeError:   # unhashable configuration values: no caching
    return _build_score_fn(space, proxy, cfg, mode, group, devs)


@functools.lru_cache(maxsize=64)
def _cached_score_fn(space, proxy, cfg, mode, group, devs):
  return _build_score_fn(space, proxy, cfg, mode, group, devs)


def _init_variables(space, proxy, module, arch, ident, x, key):
  """``(variables, proxy_key)`` of one architecture: initialised from ``fold_in(key, id)`` as
  float32 draws (the same weights for float32 and float64 proxies), None when the proxy needs
  none. The variables do not depend on ``arch``'s values (one shared layout)."""
  k_init, k_proxy = jax.random.split(jax.random.fold_in(key, ident))
  variables = None
  if proxy.needs_variables:
    with ops.float32_draws():
      variables = Network(space, module, arch).init(k_init, x)
  return variables, k_proxy


def _one_fn(space, proxy, module):
  """``one(arch, id, batch, key) -> scalar``: initialise from ``fold_in(key, id)`` and score."""
  def one(arch, ident, batch, key):
    variables, k_proxy = _init_variables(space, proxy, module, arch, ident, batch.x, key)
    net = Network(space, module, arch)
    return jnp.asarray(proxy.fn(net, variables, batch, k_proxy)).reshape(_out_shape(proxy))
  return one


def _out_shape(proxy: Proxy) -> tuple:
  """One score per architecture, or one per member of a joint proxy
  (:mod:`jaxnas.proxies.joint`)."""
  return (len(proxy.members),) if proxy.members else ()


class EagerScoreFn(ScoreFn):
  """The ``'eager'`` executor: a Python loop over architectures, each scored eagerly on its
  unrolled network (module docstring). Variables come from one compiled initialiser taking the
  architecture as an input (the layout is shared; a space such as NB101 scales its draws per
  architecture), so they equal the other modes' bit for bit."""

  def __init__(self, space, proxy, module, info: dict):
    super().__init__(None, info, 1)
    self.space, self.proxy = space, proxy
    self.net_module = module.clone(unrolled=True)
    self.init = jax.jit(functools.partial(_init_variables, space, proxy, module))

  pads = False

  def __call__(self, archs, ids, batch, key):
    out = []
    for arch, ident in zip(np.asarray(archs), np.asarray(ids)):
      variables, k_proxy = self.init(jnp.asarray(arch, jnp.int32), ident, batch.x, key)
      net = Network(self.space, self.net_module, arch)
      out.append(jnp.asarray(self.proxy.fn(net, variables, batch, k_proxy)).reshape(
          _out_shape(self.proxy)))
    return jnp.stack(out)

  def lower(self, archs, ids, batch, key):
    raise JaxnasInputError("the 'eager' executor compiles blocks, not one program: lower() "
                           "exists for modes map, vmap and hybrid")


def forward_flops(space, module, archs, batch) -> float:
  """Mean forward FLOPs of the discrete networks of ``archs`` on the whole minibatch."""
  cfg = {f: getattr(module, f) for f in module.__dataclass_fields__ if f not in ("parent", "name")}
  cfg.update(resolution=int(batch.x.shape[1]), in_channels=int(batch.x.shape[-1]))
  per_image = np.asarray(space.count_flops(np.asarray(archs), **cfg), np.float64)
  return float(np.mean(per_image)) * int(batch.x.shape[0])


class _ChoosingScoreFn(ScoreFn):
  """A scorer that picks the executor it delegates to on its first call (``chosen``); until
  then the first chunk is padded as a compiled scorer's would be."""
  chosen = None

  @property
  def pads(self):
    return self.chosen is None or self.chosen.pads


class _AutoScoreFn(_ChoosingScoreFn):
  """Mode ``'auto'`` on CPU for a proxy registered ``cpu_eager=True`` (measured faster eagerly:
  the gradient proxies through the network): on the first call, the ``'eager'`` executor when
  the networks are big enough (:data:`EAGER_MIN_FLOPS` forward FLOPs per minibatch), else the
  compiled ``'map'`` scorer. Other proxies never come here: ``auto`` traces them once and uses
  ``map`` (branching: forward-only proxies, whose forward inside ``lax.map`` costs about what the
  eager one does without its dispatch overhead, and per-sample-gradient proxies, which the eager
  executor runs slower) or ``vmap``. Measured in experiments/bench_executors.py."""

  def __init__(self, space, proxy, module, cfg, group, devs, info: dict):
    super().__init__(None, info, 1)
    self._args = (space, proxy, module, cfg, group, devs)

  def __call__(self, archs, ids, batch, key):
    if self.chosen is None:
      space, proxy, module, cfg, group, devs = self._args
      big = forward_flops(space, module, archs, batch) >= EAGER_MIN_FLOPS
      if big:
        self.chosen = EagerScoreFn(space, proxy, module, self.info)
        self.info.update(mode="eager", branches=True)
      else:   # compiled, unless it does not fit
        self.chosen = FitScoreFn(_build_score_fn(space, proxy, cfg, AUTO_NOT_UNROLLED, group,
                                                 devs),
                                 space, proxy, module, devs[0] if devs else jax.devices()[0])
    out = self.chosen(archs, ids, batch, key)
    if self.chosen.info is not self.info:
      self.info.update(self.chosen.info, branches=True)
    return out

  def lower(self, archs, ids, batch, key):
    self(archs, ids, batch, key)
    return self.chosen.lower(archs, ids, batch, key)


class FitScoreFn(_ChoosingScoreFn):
  """Mode ``'auto'`` on a space that unrolls, one device: the compiled scorer, unless XLA's
  memory analysis of it (compiled for the first chunk) says it needs more than the device has
  (:mod:`jaxnas.engine.memory`); then the ``'eager'`` executor, which holds one discrete network
  at a time. ``info['memory']`` records the comparison either way. Scores do not depend on the
  choice (executors agree: tests/engine/test_scoring.py)."""

  def __init__(self, compiled: ScoreFn, space, proxy, module, device):
    super().__init__(None, compiled.info, compiled.multiple)
    self.compiled, self._args, self.device = compiled, (space, proxy, module), device

  def _choose(self, archs, ids, batch, key):
    need = memory.program_bytes(self.compiled.lower(archs, ids, batch, key).compile())
    have = memory.available_bytes(self.device)
    if need is not None and have is not None and need > have:
      self.chosen = EagerScoreFn(*self._args, self.info)
      self.info.update(mode="eager", memory=f"{self.info['mode']} needs {memory.gib(need)}, "
                       f"{memory.gib(have)} available: eager")
    else:
      self.chosen = self.compiled
      self.info["memory"] = (f"{self.info['mode']} needs {memory.gib(need)}"
                             if need is not None else "unknown")

  def __call__(self, archs, ids, batch, key):
    if self.chosen is None:
      self._choose(archs, ids, batch, key)
    return self.chosen(archs, ids, batch, key)

  def lower(self, archs, ids, batch, key):
    """The compiled scorer's program (the one whose memory is checked), lowered."""
    return self.compiled.lower(archs, ids, batch, key)


def _build_score_fn(space, proxy, cfg, mode, group, devs) -> ScoreFn:
  module = module_for(space, proxy, dict(cfg))
  n_dev = 1 if devs is None else len(devs)
  platform = (devs[0] if devs else jax.devices()[0]).platform
  info = {"mode": mode, "branches": None, "devices": n_dev, "group": None}
  unrolls = bool(space.unrolls) and space.auto_eager and n_dev == 1  # may 'auto' pick 'eager'?
  if mode == "eager":
    if not space.unrolls:
      raise JaxnasInputError(f"mode 'eager' needs a space that unrolls concrete architectures; "
                             f"{space.name!r} does not (use map, vmap or hybrid)")
    if n_dev > 1:
      raise JaxnasInputError("mode 'eager' runs on one device; use map, vmap or hybrid with "
                             f"{n_dev} devices")
    return EagerScoreFn(space, proxy, module, info)
  if (mode == "auto" and space.unrolls and n_dev == 1
      and set(proxy.needs) & set(space.unrolled_only)):
    info["mode"] = "eager"   # the only build that has what the proxy needs
    return EagerScoreFn(space, proxy, module, info)
  if (mode == "auto" and unrolls and (proxy.cpu_eager or space.masked)
      and AUTO_BRANCHING.get(platform) == "eager"):
    return _AutoScoreFn(space, proxy, module, cfg, group, devs, info)
  one = _one_fn(space, proxy, module)

  def local(archs, ids, batch, key):
    f, m = one, mode
    if mode == "auto":
      # trace once, look for conditionals, and reuse the traced program (no second trace);
      # 'eager' is chosen before (_AutoScoreFn), never here
      closed, shape = jax.make_jaxpr(one, return_shape=True)(archs[0], ids[0], batch, key)
      info["branches"] = _has_conditional(closed.jaxpr)
      m = resolve_mode(mode, info["branches"], platform)
      run = jaxpr_as_fun(closed)
      treedef = jax.tree_util.tree_structure(shape)

      def f(a, i, b, k):
        return jax.tree_util.tree_unflatten(treedef, run(*jax.tree_util.tree_leaves((a, i, b, k))))
    info["mode"] = m
    if m == "vmap":
      return jax.vmap(f, in_axes=(0, 0, None, None))(archs, ids, batch, key)
    if m == "hybrid":
      info["group"] = group
      g = group
      ga, gi = (x.reshape((x.shape[0] // g, g) + x.shape[1:]) for x in (archs, ids))
      vf = jax.vmap(f, in_axes=(0, 0, None, None))
      out = jax.lax.map(lambda t: vf(t[0], t[1], batch, key), (ga, gi))
      return out.reshape((-1,) + out.shape[2:])
    return jax.lax.map(lambda t: f(t[0], t[1], batch, key), (archs, ids))

  hybrid = mode == "hybrid" or (mode == "auto" and AUTO_BRANCHING.get(platform) == "hybrid")
  multiple = n_dev * (group if hybrid else 1)
  if n_dev == 1:
    fn = ScoreFn(_jit_on(local, devs), info, multiple)
    if mode == "auto" and space.unrolls:   # an executor to fall back to when it cannot fit
      return FitScoreFn(fn, space, proxy, module, devs[0] if devs else jax.devices()[0])
    return fn
  mesh = sharding.local_mesh(devs)
  a, r = sharding.archs_spec(), sharding.replicated_spec()
  body = sharding.shard_map(local, mesh, in_specs=(a, a, r, r), out_specs=a)
  ns = lambda spec: jax.sharding.NamedSharding(mesh, spec)
  jitted = jax.jit(body, in_shardings=(ns(a), ns(a), ns(r), ns(r)), out_shardings=ns(a))
  return ScoreFn(jitted, info, multiple)


def _jit_on(fn, devs):
  """``jax.jit(fn)``, placed on ``devs[0]`` when a device was named."""
  if devs is None:
    return jax.jit(fn)
  s = jax.sharding.SingleDeviceSharding(devs[0])
  return jax.jit(fn, in_shardings=s, out_shardings=s)


#: Images a proxy gets from :func:`paper_batches` when its paper names no batch size.
DEFAULT_BATCH_SIZE = 64


def default_batch_for(proxy: Proxy, batch) -> Batch:
  """The minibatch a proxy sees: the caller's (``batch[proxy.name]`` when ``batch`` is a dict of
  per-proxy minibatches), or one image of it for data-free proxies."""
  if isinstance(batch, dict):
    if proxy.members:   # a joint proxy: its members' minibatch (plan() grouped equal ones)
      return default_batch_for(get_proxy(proxy.members[0]), batch)
    if proxy.name not in batch:
      raise JaxnasInputError(f"no minibatch for proxy {proxy.name!r}; the per-proxy minibatches "
                             f"are for {sorted(batch)}")
    batch = batch[proxy.name]
  if not proxy.needs_data:
    return Batch(batch.x[:1], batch.y[:1])
  return batch


def _per_arch(proxy_names) -> list:
  """``proxy_names`` with each pool-relative score replaced by its components."""
  names = list(proxy_names)
  return expand(names) if any(is_pooled(n) for n in names) else names


def paper_batch_size(proxy: Proxy) -> int:
  """Images ``proxy`` reads by default: its paper's batch size, else :data:`DEFAULT_BATCH_SIZE`
  (1 for data-free proxies, which read only the input shape)."""
  if not proxy.needs_data:
    return 1
  return proxy.batch_size or DEFAULT_BATCH_SIZE


def paper_batches(proxy_names, batch) -> dict:
  """Per-proxy minibatches of each proxy's :func:`paper_batch_size` (epsilon 256, ZiCo 2 x 128,
  TE-NAS 72, the zero-cost proxies 64): pass the result as ``batch`` to :func:`score` or
  :func:`jaxnas.engine.score_to_file`.

  Args:
    proxy_names: registered proxy names.
    batch: a :class:`Batch`, whose first ``n`` images each proxy gets; or a callable
      ``batch(n) -> Batch`` called once per distinct size, e.g.
      ``lambda n: data.minibatch("cifar10-bundled", n, seed=0)`` (what ``jaxnas score`` does, so
      a proxy sees the same images as when scored alone with ``--batch-size n``).

  Raises :class:`JaxnasInputError` if a :class:`Batch` holds fewer images than a proxy needs.
  """
  sizes = {name: paper_batch_size(get_proxy(name)) for name in _per_arch(proxy_names)}
  if callable(batch) and not isinstance(batch, Batch):
    drawn = {n: batch(n) for n in sorted(set(sizes.values()))}
    return {name: drawn[n] for name, n in sizes.items()}
  out = {}
  for name, n in sizes.items():
    if batch.x.shape[0] < n:
      raise JaxnasInputError(f"proxy {name!r} uses {n} images but the minibatch holds "
                             f"{batch.x.shape[0]}")
    out[name] = Batch(batch.x[:n], batch.y[:n])
  return out


def check_archs(space: SearchSpace, archs) -> np.ndarray:
  """``archs`` as int32 ``(n, *arch_shape)``; raises :class:`JaxnasInputError` otherwise."""
  archs = np.asarray(archs)
  if archs.dtype.kind not in "iu":
    raise JaxnasInputError(f"archs must hold integer op indices, got dtype {archs.dtype}")
  archs = archs.astype(np.int32)
  if archs.ndim != 1 + len(space.arch_shape) or archs.shape[1:] != tuple(space.arch_shape):
    raise JaxnasInputError(
        f"archs must have shape (n, {', '.join(map(str, space.arch_shape))}), got {archs.shape}")
  if len(archs) == 0:
    raise JaxnasInputError("no architectures to score (empty list)")
  return archs


def default_ids(space: SearchSpace, archs: np.ndarray) -> np.ndarray:
  """Benchmark indices (enumerable spaces) or positions: the integers folded into the key."""
  ids = space.to_index(archs) if space.to_index is not None else np.arange(len(archs))
  return np.asarray(ids, np.int32)


def call_size(n: int, chunk_size: int, multiple: int) -> int:
  """Architectures per compiled call: ``chunk_size`` (or ``n`` when smaller), rounded up to a
  multiple of ``multiple`` (devices x group). The last chunk is padded to it, never recompiled."""
  if chunk_size < 1:
    raise JaxnasInputError(f"chunk size must be a positive integer, got {chunk_size}")
  size = min(chunk_size, n)
  return -(-size // multiple) * multiple


def chunk_bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
  """``[(start, stop), ...]`` covering ``range(n)`` in chunks of ``chunk_size`` (last shorter)."""
  return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


def group_plan(proxy_names, batch) -> list[tuple]:
  """The per-architecture proxies of ``proxy_names`` in groups scored in one pass each
  (:func:`jaxnas.proxies.joint.plan`: shared quantities, equal minibatches)."""
  return joint.plan([get_proxy(n) for n in _per_arch(proxy_names)],
                    lambda p: default_batch_for(p, batch))


def _proxy_of(proxy_name) -> Proxy:
  """The proxy a name stands for; a tuple of two or more names is their joint proxy."""
  if isinstance(proxy_name, (tuple, list)):
    names = tuple(proxy_name)
    return get_proxy(names[0]) if len(names) == 1 else joint.joint(names)
  return get_proxy(proxy_name)


def iter_scores(space, archs, proxy_name, batch: Batch, *, seed: int = 0, ids=None,
                config: Optional[dict] = None, chunk_size: int = 64, mode: str = "auto",
                group: Optional[int] = None, devices=None, start: int = 0,
                precision: Optional[str] = None,
                report: Optional[dict] = None) -> Iterator[tuple[int, int, np.ndarray]]:
  """Scores one proxy chunk by chunk: yields ``(lo, hi, float64 scores of archs[lo:hi])``.

  ``proxy_name`` may be a tuple of names scored in one pass (a group of :func:`group_plan`); the
  scores are then ``(hi - lo, len(names))``, one column per name.

  Chunks are ``archs[start + c * chunk_size:start + (c + 1) * chunk_size]`` whatever the device
  count (``start`` > 0 resumes a run); the last one is padded. Compiles once (first chunk).
  ``report``, when given, receives the scorer's ``info`` (resolved mode, ...) after each chunk.
  """
  space = get_space(space)
  archs = check_archs(space, archs)
  ids = default_ids(space, archs) if ids is None else np.asarray(ids, np.int32)
  if ids.shape != (len(archs),):
    raise JaxnasInputError(f"ids must have shape ({len(archs)},), got {ids.shape}")
  proxy = _proxy_of(proxy_name)
  b = default_batch_for(proxy, batch)
  key = jax.random.key(seed)

  def context():
    # entered around each call only: the caller's code between chunks runs in its own settings
    stack = contextlib.ExitStack()
    stack.enter_context(x64_context(proxy))
    if precision is not None:
      stack.enter_context(jax.default_matmul_precision(precision))
    return stack

  memory.release_compiled_near_map_limit()   # before compiling: a process at its map limit
  with context():                             # dies in XLA (memory module docstring)
    fn = make_score_fn(space, proxy, config, mode, group=group, devices=devices)
  size = call_size(len(archs), chunk_size, fn.multiple)
  if not 0 <= start <= len(archs):
    raise JaxnasInputError(f"start must be in 0..{len(archs)}, got {start}")
  for lo, hi in chunk_bounds(len(archs) - start, chunk_size):
    lo, hi = lo + start, hi + start
    a, i = archs[lo:hi], ids[lo:hi]
    pad = size - (hi - lo) if fn.pads else 0
    if pad:
      a = np.concatenate([a, np.repeat(a[-1:], pad, 0)])
      i = np.concatenate([i, np.repeat(i[-1:], pad, 0)])
    with context():
      vals = np.asarray(fn(a, i, b, key), np.float64)[:hi - lo]
    if report is not None:
      report.update(fn.info)
    yield lo, hi, vals


def score(space, archs, proxy_names, batch: Batch, *, seed: int = 0, ids=None,
          config: Optional[dict] = None, chunk_size: int = 64, mode: str = "auto",
          progress: Optional[Callable[[int], None]] = None, group: Optional[int] = None,
          devices=None, precision: Optional[str] = None) -> dict:
  """Scores architectures with each named proxy.

  Proxies that compute a quantity in common (``Proxy.shares``, e.g. the loss gradient of
  ``grad_norm``, ``snip`` and ``plain``) on the same minibatch are scored in one pass that
  computes it once (:func:`group_plan`); their scores equal those scored alone up to float32
  rounding.

  Args:
    space: a :class:`SearchSpace` or its name.
    archs: ``(n, *arch_shape)`` op indices.
    proxy_names: iterable of registered proxy names.
    batch: the minibatch, or a dict proxy name -> minibatch (e.g. :func:`paper_batches`);
      data-free proxies get its first image only, for shapes.
    seed: seeds initialisation and proxy randomness.
    ids: per-architecture integers for key folding; default the benchmark index (enumerable
      spaces) or the position.
    config: module configuration (e.g. ``{'C': 8, 'N': 1}``).
    chunk_size: architectures per compiled call (the last chunk is padded, never recompiled).
    mode: ``'auto'``, ``'map'``, ``'vmap'`` or ``'hybrid'`` (module docstring).
    progress: optional callable ``progress(n)`` called after each chunk with the number of
      architectures it scored (e.g. a :class:`jaxnas.engine.progress.Progress`).
    group: architectures per group in ``'hybrid'`` mode.
    devices: ``None`` (default device), an int (first n local devices) or a device list; chunks
      are split over them. Scores do not depend on it.
    precision: ``jax.default_matmul_precision`` while tracing (e.g. ``'highest'`` on GPUs, whose
      default uses TF32); None keeps the backend default (full float32 on CPU).

  Returns:
    dict name -> float64 array ``(n,)`` for each proxy and each pooled score's components;
    non-finite values are kept as NaN/inf, never replaced.
  """
  space = get_space(space)
  archs = check_archs(space, archs)
  out = {}
  for names in group_plan(proxy_names, batch):
    res = np.empty((len(archs), len(names)), np.float64)
    for start, stop, vals in iter_scores(space, archs, names, batch, seed=seed, ids=ids,
                                         config=config, chunk_size=chunk_size, mode=mode,
                                         group=group, devices=devices, precision=precision):
      res[start:stop] = vals.reshape(stop - start, len(names))
      if progress is not None:
        progress((stop - start) * len(names))
    out.update({name: res[:, j].copy() for j, name in enumerate(names)})
  for name in proxy_names:
    if is_pooled(name):
      out[name] = apply_pooled(name, out)
  return out
