"""``jaxnas score``: score architectures with proxies; writes a long-format CSV.

With ``--out`` the CSV is written chunk by chunk to ``OUT.partial`` (each chunk committed before the
next starts) and renamed to ``OUT`` when complete, beside ``OUT.meta.json`` (settings, versions,
checksum); ``--resume`` continues a killed run. An existing ``OUT`` is never replaced without
``--overwrite`` (and then only when the new run is complete). See :mod:`jaxnas.engine.store`.
"""

import os
import time

import numpy as np

from jaxnas.commands import _io
from jaxnas.errors import JaxnasInputError

NAME = "score"
HELP = "score architectures with proxies; writes a long CSV (index,arch_str,proxy,score)"


def add_arguments(s):
  """Adds the ``jaxnas score`` options to the subparser ``s``."""
  s.add_argument("--space", default="nb201")
  s.add_argument("--proxies", default="params,flops",
                 help="comma-separated proxy names, or 'all' (every registered proxy); a "
                      "pool-relative score (e.g. aznas) scores and stores its components and is "
                      "reported over the architectures of this run; proxies that share a "
                      "quantity (grad_norm, snip, plain: one gradient) run in one pass")
  s.add_argument("--archs", default=None, help="'all', or comma-separated indices/arch strings")
  s.add_argument("--archs-file", default=None, help="file with one index or arch string per line")
  s.add_argument("--sample", type=int, default=None, help="score N architectures drawn with --seed")
  s.add_argument("--seed", type=int, default=0)
  s.add_argument("--dataset", default="cifar10-bundled")
  s.add_argument("--data-dir", default=None, help="tensorflow-datasets directory")
  s.add_argument("--batch-size", type=int, default=None,
                 help="images per minibatch for every proxy (default: each proxy its paper's "
                      "batch size, e.g. epsilon 256, zico 256, tenas_ntk_cond 72, others 64)")
  s.add_argument("--out", default=None, help="CSV path (columns index,arch_str,proxy,score)")
  g = s.add_argument_group("long runs")
  g.add_argument("--resume", action="store_true",
                 help="continue an interrupted run of --out, or keep a complete --out (same "
                      "settings required)")
  g.add_argument("--overwrite", action="store_true",
                 help="start again: discard an interrupted run of --out and replace an existing "
                      "--out when the new run completes")
  g.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
  g.add_argument("--chunk-size", type=int, default=64,
                 help="architectures per compiled call and per committed chunk (default 64)")
  g.add_argument("--mode", default="auto", help="auto, map, vmap, hybrid or eager (see jaxnas.engine)")
  g.add_argument("--group", type=int, default=None, help="architectures per group in hybrid mode")
  g.add_argument("--devices", type=int, default=None,
                 help="local devices to split chunks over (default: all)")
  g.add_argument("--precision", default=None,
                 help="matmul precision: default, high or highest (GPUs default to TF32)")
  g.add_argument("--shard", default=None,
                 help="I/N: score only the I-th of N contiguous shares (independent machines)")
  g.add_argument("--distributed", action="store_true",
                 help="multi-host: jax.distributed.initialize(); process I of N scores its share "
                      "into OUT.shard-I-of-N")
  g.add_argument("--coordinator", default=None,
                 help="with --distributed: coordinator host:port (default: from the cluster)")
  g.add_argument("--num-processes", type=int, default=None, help="with --distributed")
  g.add_argument("--process-id", type=int, default=None, help="with --distributed")
  g.add_argument("--merge", default=None,
                 help="comma-separated finished shard files to join into --out (no scoring; "
                      "--overwrite replaces an existing --out)")
  s.add_argument("--config", default=None,
                 help="module configuration overrides, e.g. C=8,N=1 (smaller networks)")
  s.add_argument("--resolution", type=int, default=None,
                 help="average-pool the images down to RxR (a divisor of the image size)")


def score_rows(space, archs, results):
  """Yields the CSV rows ``(index, arch_str, proxy, repr(score))``, proxy-major.

  ``archs`` is ``(n, *arch_shape)``; ``results`` maps each proxy to its ``(n,)`` scores. ``index``
  is the benchmark index, or the position in ``archs`` for a space without one.
  """
  idx = space.to_index(archs) if space.to_index is not None else np.arange(len(archs))
  strs = [space.decode(a) for a in archs]
  for name, vals in results.items():
    for i, s, v in zip(np.atleast_1d(idx), strs, vals):
      yield (int(i), s, name, repr(float(v)))


def parse_config(text, space) -> dict:
  """``'C=8,N=1,bn=none'`` -> ``{'C': 8, 'N': 1, 'bn': 'none'}``, each value of its option's type.

  Raises :class:`JaxnasInputError` for an item that is not KEY=VALUE, a key given twice, an unknown
  key or a value of the wrong type (see :func:`jaxnas.commands._io.check_config`).
  """
  if text is None:
    return {}
  raw = {}
  for item in _io.split(text):
    k, sep, v = item.partition("=")
    k, v = k.strip(), v.strip()
    if not sep or not k:
      raise JaxnasInputError(f"--config item {item!r} is not KEY=VALUE")
    if k in raw:
      raise JaxnasInputError(f"--config key {k!r} given twice ({raw[k]!r} and {v!r})")
    raw[k] = v
  if not raw:
    raise JaxnasInputError("--config is empty; give KEY=VALUE items, e.g. C=8,N=1")
  return _io.check_config(space, raw, "--config")


def downsample(batch, resolution):
  """Average-pools the images of ``batch`` to ``resolution`` x ``resolution``."""
  from jaxnas.data import Batch
  h = batch.x.shape[1]
  if resolution is None or resolution == h:
    return batch
  if resolution < 1 or h % resolution:
    raise JaxnasInputError(f"--resolution must divide the image size {h}, got {resolution}")
  f = h // resolution
  n, _, w, c = batch.x.shape
  x = np.asarray(batch.x).reshape(n, resolution, f, w // f, f, c).mean((2, 4))
  return Batch(x.astype(np.float32), batch.y)


def _check_numbers(args) -> None:
  """Raises :class:`JaxnasInputError` for an integer option out of its range (before any work)."""
  _io.check_seed(args.seed)
  for option, value in (("--sample", args.sample), ("--batch-size", args.batch_size),
                        ("--chunk-size", args.chunk_size), ("--group", args.group),
                        ("--devices", args.devices), ("--resolution", args.resolution),
                        ("--num-processes", args.num_processes)):
    _io.check_positive(value, option)
  _io.check_positive(args.process_id, "--process-id", zero=True)
  if (args.num_processes is not None and args.process_id is not None
      and args.process_id >= args.num_processes):
    raise JaxnasInputError(f"--process-id must be below --num-processes {args.num_processes}, got "
                           f"{args.process_id}")
  if not args.distributed and any(v is not None for v in (args.coordinator, args.num_processes,
                                                          args.process_id)):
    raise JaxnasInputError("--coordinator, --num-processes and --process-id need --distributed")
  if args.distributed and args.shard:
    raise JaxnasInputError("give only one of --shard, --distributed")
  if args.data_dir is not None and not os.path.isdir(args.data_dir):
    raise JaxnasInputError(f"--data-dir {args.data_dir!r} is not a directory")


def _summary(results):
  for name, vals in results.items():
    fin = np.isfinite(vals)
    lo = np.nanmin(vals) if fin.any() else float("nan")
    med = np.nanmedian(vals) if fin.any() else float("nan")
    hi = np.nanmax(vals) if fin.any() else float("nan")
    print(f"  {name:<14} min {lo:.6g}  median {med:.6g}  max {hi:.6g}  "
          f"non-finite {int((~fin).sum())}")


def run(args) -> int:
  """Runs ``jaxnas score`` (or joins shards with ``--merge``); returns the exit code."""
  from jaxnas import data, engine
  from jaxnas.engine import scoring, sharding, store
  from jaxnas.spaces import get_space
  _check_numbers(args)
  if args.resume and args.overwrite:
    raise JaxnasInputError("give only one of --resume, --overwrite")
  if (args.resume or args.overwrite or args.distributed or args.shard or args.merge is not None) \
      and not args.out:
    raise JaxnasInputError("--resume, --overwrite, --shard, --distributed and --merge need --out")
  if args.out:
    _io.check_output_path(args.out)
  if args.merge is not None:
    shards = _io.split(args.merge)
    if not shards:
      raise JaxnasInputError("--merge is empty; give the comma-separated shard files")
    if args.resume or args.shard or args.distributed:
      raise JaxnasInputError("--merge joins finished shards: it takes no --resume, --shard or "
                             "--distributed")
    meta = store.merge(shards, args.out, overwrite=args.overwrite)
    print(f"merged {len(shards)} shards: {meta['state']['rows']} rows -> {args.out}")
    return 0
  if args.distributed:
    import jax
    # before any computation initialises a backend; None: from the cluster (SLURM, Open MPI,
    # Cloud TPU) or JAX_COORDINATOR_ADDRESS
    jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
  space = get_space(args.space)
  from jaxnas.proxies import apply_pooled, expand, is_pooled, list_proxies
  asked = list_proxies() if args.proxies == "all" else _io.split(args.proxies)
  if not asked:
    raise JaxnasInputError("--proxies is empty; see `jaxnas list`")
  for p in asked:
    if asked.count(p) > 1:
      raise JaxnasInputError(f"--proxies names {p!r} twice; give each proxy once")
  proxies = expand(asked)  # pool-relative scores -> their components
  if args.proxies == "all":   # every proxy that runs on this space
    from jaxnas.proxies import missing_capabilities
    asked = [p for p in asked if not missing_capabilities(p, space)]
    proxies = expand(asked)
  from jaxnas.proxies import check_supported
  check_supported(asked, space)   # before any data or tracing
  pooled = [p for p in asked if is_pooled(p)]
  if args.mode not in scoring.MODES:
    raise JaxnasInputError(f"unknown --mode {args.mode!r}; allowed: {', '.join(scoring.MODES)}")
  if args.precision not in (None, "default", "high", "highest"):
    raise JaxnasInputError(f"unknown --precision {args.precision!r}; allowed: default, high, "
                           f"highest")
  data.num_classes(args.dataset)
  config = {"num_classes": data.num_classes(args.dataset)}
  config.update(parse_config(args.config, space))
  all_archs = _io.select_archs(space, args.archs, args.archs_file, args.sample, args.seed)
  out, shard = args.out, None
  if args.distributed:
    import jax
    shard = (jax.process_index() if args.process_id is None else args.process_id,
             jax.process_count() if args.num_processes is None else args.num_processes)
    out = f"{args.out}.shard-{shard[0]}-of-{shard[1]}"
  elif args.shard:
    shard = sharding.parse_shard(args.shard)
  archs, ids = all_archs, scoring.default_ids(space, all_archs)
  if shard is not None:
    share = sharding.process_share(len(all_archs), *shard)
    archs, ids = all_archs[share], ids[share]
    if len(archs) == 0:
      raise JaxnasInputError(f"shard {shard[0]}/{shard[1]} of {len(all_archs)} architectures "
                             f"is empty")
  if out:
    _io.check_output_path(out)
  if args.batch_size is None:  # each proxy its paper's batch size
    batch = scoring.paper_batches(proxies, lambda n: downsample(
        data.minibatch(args.dataset, n, seed=args.seed, data_dir=args.data_dir), args.resolution))
  else:
    batch = data.minibatch(args.dataset, args.batch_size, seed=args.seed, data_dir=args.data_dir)
    batch = downsample(batch, args.resolution)
  precision = None if args.precision in (None, "default") else args.precision
  devices = sharding.resolve_devices(args.devices)
  show = not args.no_progress
  t0 = time.perf_counter()
  if out:
    settings = engine.make_settings(space, archs, proxies, batch, seed=args.seed, config=config,
                                    dataset=args.dataset, precision=precision, ids=ids,
                                    shard=shard, all_archs=all_archs if shard else None)
    meta = engine.score_to_file(space, archs, proxies, batch, out, seed=args.seed, ids=ids,
                                config=config, chunk_size=args.chunk_size, mode=args.mode,
                                group=args.group, devices=devices, precision=precision,
                                resume=args.resume, overwrite=args.overwrite, progress=show or None,
                                settings=settings, log=print)
    _, loaded = store.load(out)
    results = {p: loaded[p][1] for p in proxies}
    modes = meta.get("run", {}).get("modes", {})
    fit = meta.get("run", {}).get("memory", {})
  else:
    bar = engine.Progress(len(archs) * len(proxies)) if show else None
    results = {}
    for names in scoring.group_plan(proxies, batch):   # one pass per group sharing a gradient
      if bar is not None:
        bar.phase("+".join(names))
      results.update(engine.score(space, archs, list(names), batch, seed=args.seed, ids=ids,
                                  config=config, chunk_size=args.chunk_size, mode=args.mode,
                                  group=args.group, devices=devices, precision=precision,
                                  progress=bar))
    if bar is not None:
      bar.close()
    modes, fit = {}, {}
  dt = time.perf_counter() - t0
  print(f"scored {len(archs)} architectures x {len(proxies)} proxies in {dt:.1f} s"
        + (f" -> {out}" if out else ""))
  if modes:
    print("  modes: " + ", ".join(f"{p} {modes[p]}" for p in proxies if p in modes))
  for p in proxies:   # 'auto' chose eager because the compiled program did not fit: say so
    if "available: eager" in fit.get(p, ""):
      print(f"  {p}: {fit[p]}")
  if pooled:
    results.update({p: apply_pooled(p, results) for p in pooled})
    print(f"  pool-relative ({', '.join(pooled)}): over the {len(archs)} architectures of this "
          + ("shard; `jaxnas correlate` on the merged file ranks over all" if shard else "run")
          + ("; the file stores the components" if out else ""))
  _summary(results)
  return 0
