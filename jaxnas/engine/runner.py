"""Whole runs to a file: score every proxy chunk by chunk, commit each chunk, resume after a kill.

:func:`score_to_file` is what ``jaxnas score --out`` calls; see :mod:`jaxnas.engine.store` for the
file protocol and :mod:`jaxnas.engine.sharding` for devices and hosts.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Callable, Optional

import numpy as np

from jaxnas.engine import progress as progress_lib
from jaxnas.engine import scoring, store
from jaxnas.proxies import expand, get_proxy
from jaxnas.spaces import get_space


def _sha(*arrays) -> str:
  h = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(np.asarray(a))
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def _jsonable(v):
  if isinstance(v, (bool, int, float, str)) or v is None:
    return v
  if isinstance(v, (np.integer, np.floating)):
    return v.item()
  if isinstance(v, (tuple, list)):
    return [_jsonable(x) for x in v]
  if isinstance(v, dict):
    return {str(k): _jsonable(x) for k, x in v.items()}
  return repr(v)


def versions() -> dict:
  """Versions of the libraries that determine the numbers, and the random stream."""
  import flax
  import jax
  import jaxlib
  import jaxnas
  partitionable = bool(getattr(jax.config, "jax_threefry_partitionable", False))
  return {"jaxnas": jaxnas.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
          "flax": flax.__version__, "numpy": np.__version__,
          "prng": "threefry_partitionable" if partitionable else "threefry_classic"}


def module_settings(space, proxy, config) -> dict:
  """The module configuration a proxy runs with (BN mode, width, ...), JSON-able; not the fields
  that only choose how it executes (``unrolled``: :data:`store.EXECUTION_FIELDS`)."""
  m = scoring.module_for(space, proxy, config)
  skip = ("parent", "name") + store.EXECUTION_FIELDS
  return {f: _jsonable(getattr(m, f)) for f in m.__dataclass_fields__ if f not in skip}


def computing(config) -> dict:
  """The configuration items that change what is computed: ``config`` without
  :data:`store.EXECUTION_FIELDS` (e.g. NB101's ``remat``, kept in the sidecar's ``run``)."""
  return {k: v for k, v in dict(config or {}).items() if k not in store.EXECUTION_FIELDS}


def make_settings(space, archs, proxy_names, batch, *, seed: int = 0,
                  config: Optional[dict] = None, dataset: Optional[str] = None,
                  precision: Optional[str] = None, ids=None, shard: Optional[tuple] = None,
                  all_archs=None) -> dict:
  """What gives a run's scores their meaning; two runs may share a file only if these are equal.

  Not included (they do not change what is computed): chunk size, mode, device count.
  """
  space = get_space(space)
  archs = scoring.check_archs(space, archs)
  ids = scoring.default_ids(space, archs) if ids is None else np.asarray(ids, np.int32)
  proxy_names = expand(proxy_names)
  proxies = {}
  for name in proxy_names:
    p = get_proxy(name)
    b = scoring.default_batch_for(p, batch)
    proxies[name] = {"dtype": "float64" if p.x64 else "float32", "images": int(b.x.shape[0]),
                     "uses_labels": bool(p.needs_labels), "module": module_settings(space, p, config)}
  if isinstance(batch, dict):  # per-proxy minibatches (scoring.paper_batches)
    names = sorted(batch)
    first = batch[names[0]]
    batch_size = {n: int(batch[n].x.shape[0]) for n in names}
    batch_sha = _sha(*[a for n in names for a in (batch[n].x, batch[n].y)])
  else:
    first, batch_size, batch_sha = batch, int(batch.x.shape[0]), _sha(batch.x, batch.y)
  s = {"space": space.name, "proxies": list(proxy_names), "n_archs": int(len(archs)),
       "archs_sha256": _sha(archs, ids), "seed": int(seed), "dataset": dataset,
       "batch_size": batch_size, "resolution": list(first.x.shape[1:3]),
       "batch_sha256": batch_sha, "config": _jsonable(computing(config)),
       "precision": precision or "default", "proxy_settings": proxies, "versions": versions(),
       "shard": None if shard is None else f"{shard[0]}/{shard[1]}"}
  if shard is not None:
    all_archs = scoring.check_archs(space, all_archs)
    s["all_n_archs"] = int(len(all_archs))
    s["all_archs_sha256"] = _sha(all_archs, scoring.default_ids(space, all_archs))
  return json.loads(json.dumps(s))


def score_to_file(space, archs, proxy_names, batch, out: str, *, seed: int = 0,
                  ids=None, config: Optional[dict] = None, chunk_size: int = 64,
                  mode: str = "auto", group: Optional[int] = None, devices=None,
                  precision: Optional[str] = None, dataset: Optional[str] = None,
                  resume: bool = False, overwrite: bool = False, progress=None,
                  settings: Optional[dict] = None,
                  log: Optional[Callable[[str], None]] = None) -> dict:
  """Scores ``archs`` with each proxy into ``out`` (long CSV + ``out.meta.json``), chunk by chunk.

  Each chunk is committed before the next starts, so a kill loses at most the chunk in flight;
  ``resume=True`` continues an interrupted run (after checking its settings and checksum) and
  produces the same file as an uninterrupted run. ``progress``: None (nothing), ``True`` (a bar on
  stderr) or a :class:`jaxnas.engine.progress.Progress`-like object. ``settings`` defaults to
  :func:`make_settings` of the arguments. Other arguments as :func:`jaxnas.engine.score`.

  Proxies that share a quantity are scored in one pass (:func:`jaxnas.engine.scoring.group_plan`);
  the sidecar's ``run['joint']`` names each one's group and ``run['seconds']`` splits the pass's
  time evenly between its members.

  A pool-relative score among ``proxy_names`` (e.g. ``'aznas'``) stands for its components: the
  file holds their per-architecture scores, never the pooled value, which depends on the set
  (apply it to what you read back: :func:`jaxnas.proxies.with_pooled`).

  Returns the sidecar of the finished file (``meta['run']`` holds modes, devices, seconds and,
  for ``'auto'``, the compiled program's memory beside the device's:
  :class:`jaxnas.engine.scoring.FitScoreFn`).
  """
  space = get_space(space)
  archs = scoring.check_archs(space, archs)
  ids = scoring.default_ids(space, archs) if ids is None else np.asarray(ids, np.int32)
  proxy_names = expand(proxy_names)
  if settings is None:
    settings = make_settings(space, archs, proxy_names, batch, seed=seed, config=config,
                             dataset=dataset, precision=precision, ids=ids)
  import jax
  run = {"chunk_size": int(chunk_size), "mode_requested": mode, "backend": jax.default_backend()}
  execution = {k: v for k, v in dict(config or {}).items() if k in store.EXECUTION_FIELDS}
  if execution:
    run["execution_config"] = _jsonable(execution)
  writer, msg = store.open_output(out, settings, resume=resume, overwrite=overwrite, run=run)
  if msg and log is not None:
    log(msg)
  if writer is None:
    return store.verify(out, settings)
  n = len(archs)
  done = writer.done
  total = n * len(proxy_names)
  bar = progress
  if progress is True:
    bar = progress_lib.Progress(total, done=sum(done.values()))
  strs = None
  modes, seconds = dict(writer.meta["run"].get("modes", {})), dict(
      writer.meta["run"].get("seconds", {}))
  joint = dict(writer.meta["run"].get("joint", {}))
  fit = dict(writer.meta["run"].get("memory", {}))   # 'auto': the compiled program's memory
  try:
    for names in scoring.group_plan(proxy_names, batch):
      names = tuple(nm for nm in names if done[nm] < n)
      if not names:
        continue
      if strs is None:
        strs = [space.decode(a) for a in archs]
      if bar is not None and hasattr(bar, "phase"):
        bar.phase("+".join(names))
      if len(names) > 1:
        joint.update({nm: list(names) for nm in names})
      info: dict = {}
      t0 = time.perf_counter()
      for lo, hi, vals in scoring.iter_scores(
          space, archs, names, batch, seed=seed, ids=ids, config=config, chunk_size=chunk_size,
          mode=mode, group=group, devices=devices, start=min(done[nm] for nm in names),
          precision=precision, report=info):
        dt = (time.perf_counter() - t0) / len(names)   # a joint pass's time, split evenly
        vals = vals.reshape(hi - lo, len(names))
        for j, name in enumerate(names):
          start = max(lo, done[name])   # a member further along keeps its committed rows
          if start >= hi:
            continue
          modes[name] = info.get("mode")
          if info.get("memory"):
            fit[name] = info["memory"]
          seconds[name] = seconds.get(name, 0.0) + dt
          writer.note(modes=modes, seconds=seconds, devices=info.get("devices"), joint=joint,
                      **({"memory": fit} if fit else {}))
          writer.append(name, start, hi, store.format_rows(
              ids[start:hi], strs[start:hi], name, vals[start - lo:, j]))
          done[name] = hi
          if bar is not None:
            bar(hi - start)
        t0 = time.perf_counter()
    writer.finish()
  finally:
    writer.close()
    if bar is not None and hasattr(bar, "close") and progress is True:
      bar.close()
  return writer.meta
