"""Score files that survive a killed run: incremental, atomic per chunk, resumable, self-describing.

A run writing ``OUT`` (long CSV ``index,arch_str,proxy,score``) works on ``OUT.partial`` and its
sidecar ``OUT.partial.meta.json``; ``OUT`` itself appears (by rename) only when every chunk is in,
so a file named ``OUT`` is always complete. Per chunk:

1. the chunk's rows are appended to ``OUT.partial`` and ``fsync``-ed;
2. the sidecar is replaced atomically (temporary file, ``fsync``, ``os.replace``) with the new
   committed length, row count, per-proxy progress and the SHA-256 of the committed bytes.

The committed state is what the sidecar says. A ``SIGKILL`` between 1 and 2, or inside 1 (a large
``write`` can be cut short), leaves bytes past the committed length: resuming drops them, so the
chunk in flight is lost and nothing else; no row is ever duplicated. The sidecar also records the
settings that give the scores their meaning (space, proxies, architectures, dataset and the
minibatch's hash, batch size, seed, per-proxy dtype and module configuration including BN mode,
matmul precision, library versions); resuming with other settings, or a file whose checksum, length
or rows disagree with its sidecar, raises :class:`OutputError` naming what differs. Nothing is ever
silently merged.

Row order is proxy-major, architectures in the given order: a resumed run's file is byte-identical
to an uninterrupted one.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import os
from typing import Optional, Sequence

import numpy as np

from jaxnas.errors import JaxnasInputError

FORMAT = "jaxnas-scores/1"
COLUMNS = ("index", "arch_str", "proxy", "score")
HEADER = (",".join(COLUMNS) + "\r\n").encode()
#: Settings that differ between the shards of one run.
SHARD_KEYS = ("shard", "n_archs", "archs_sha256", "all_n_archs", "all_archs_sha256")


class OutputError(JaxnasInputError):
  """A score file that is partial, corrupt, or written with other settings."""


def partial_path(out: str) -> str:
  """``OUT.partial``: the file a run writing ``out`` works on until it is complete."""
  return f"{out}.partial"


def meta_path(path: str) -> str:
  """``PATH.meta.json``: the metadata sidecar of the score file ``path``."""
  return f"{path}.meta.json"


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _fsync_dir(path: str) -> None:
  try:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def write_json_atomic(path: str, obj: dict) -> None:
  """Writes JSON through a temporary file, ``fsync`` and ``os.replace`` (all or nothing)."""
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(obj, f, indent=1, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def format_rows(indices, arch_strs, proxy: str, values) -> bytes:
  """CSV bytes of one chunk: ``index,arch_str,proxy,score`` (``repr`` of the float64 score)."""
  buf = io.StringIO()
  w = csv.writer(buf)
  for i, s, v in zip(indices, arch_strs, values):
    w.writerow((int(i), s, proxy, repr(float(v))))
  return buf.getvalue().encode()


def _sha256(path: str, nbytes: int) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    left = nbytes
    while left > 0:
      block = f.read(min(left, 1 << 20))
      if not block:
        break
      h.update(block)
      left -= len(block)
  return h.hexdigest()


def diff_settings(a: dict, b: dict, prefix: str = "") -> list[str]:
  """Human-readable differences between two settings dicts (``key: a vs b``)."""
  out = []
  for k in sorted(set(a) | set(b)):
    va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
    if isinstance(va, dict) and isinstance(vb, dict):
      out += diff_settings(va, vb, f"{prefix}{k}.")
    elif va != vb:
      if k.endswith("sha256"):   # show enough of a hash to tell them apart
        va, vb = (v[:12] + "..." if isinstance(v, str) else v for v in (va, vb))
      out.append(f"{prefix}{k}: {va!r} in the file vs {vb!r} now")
  return out


def _read_meta(path: str) -> dict:
  mp = meta_path(path)
  try:
    with open(mp, encoding="utf-8") as f:
      meta = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise OutputError(f"metadata {mp!r} is unreadable or corrupt ({type(e).__name__})") from None
  if not isinstance(meta, dict) or meta.get("format") != FORMAT:
    raise OutputError(f"metadata {mp!r} is not a {FORMAT} sidecar (format "
                      f"{meta.get('format') if isinstance(meta, dict) else None!r})")
  state = meta.get("state")
  if not isinstance(state, dict) or not {"bytes", "sha256", "rows", "done"} <= set(state):
    raise OutputError(f"metadata {mp!r} lacks its committed state (bytes, sha256, rows, done)")
  return meta


def verify(path: str, settings: Optional[dict] = None) -> dict:
  """Checks a score file (``OUT`` or ``OUT.partial``) against its sidecar; returns the sidecar.

  Checks: the sidecar is a :data:`FORMAT` sidecar; the file holds at least the committed bytes and
  their SHA-256 matches; the committed rows parse, have the expected columns, count, proxies and
  no duplicate (proxy, index); and, when ``settings`` is given, the recorded settings equal them.
  Bytes past the committed length (a chunk cut off by a kill) are reported in
  ``meta['uncommitted_bytes']``, not read. Raises :class:`OutputError` otherwise.
  """
  if not os.path.isfile(path):
    raise OutputError(f"score file {path!r} does not exist")
  if not os.path.isfile(meta_path(path)):
    raise OutputError(
        f"score file {path!r} has no metadata sidecar {meta_path(path)!r}: it is not a jaxnas "
        f"incremental output, or its metadata was lost; refusing to use it")
  meta = _read_meta(path)
  state = meta["state"]
  size = os.path.getsize(path)
  if size < state["bytes"]:
    raise OutputError(f"score file {path!r} is truncated: {size} bytes present, "
                      f"{state['bytes']} committed")
  if _sha256(path, state["bytes"]) != state["sha256"]:
    raise OutputError(f"score file {path!r} is corrupt: the SHA-256 of its {state['bytes']} "
                      f"committed bytes does not match its metadata")
  if settings is not None:
    diff = diff_settings(meta["settings"], settings)
    if diff:
      raise OutputError(f"score file {path!r} was written with other settings: "
                        + "; ".join(diff[:6]) + (" ..." if len(diff) > 6 else ""))
  _check_rows(path, meta)
  meta["uncommitted_bytes"] = size - state["bytes"]
  return meta


def _check_rows(path: str, meta: dict) -> None:
  state, proxies = meta["state"], meta["settings"]["proxies"]
  with open(path, "rb") as f:
    data = f.read(state["bytes"])
  if not data.startswith(HEADER):
    raise OutputError(f"score file {path!r} does not start with the header {','.join(COLUMNS)}")
  rows = list(csv.reader(io.StringIO(data[len(HEADER):].decode("utf-8"))))
  if len(rows) != state["rows"]:
    raise OutputError(f"score file {path!r} holds {len(rows)} committed rows, its metadata "
                      f"{state['rows']}")
  seen, counts = set(), {p: 0 for p in proxies}
  for n, row in enumerate(rows, start=2):
    if len(row) != len(COLUMNS) or row[2] not in counts:
      raise OutputError(f"score file {path!r} line {n} is malformed: {row!r}")
    try:
      float(row[3])
    except ValueError:
      raise OutputError(f"score file {path!r} line {n}: score {row[3]!r} is not a number") from None
    if (row[2], row[0]) in seen:
      raise OutputError(f"score file {path!r} line {n}: duplicate row for proxy {row[2]!r}, "
                        f"index {row[0]}")
    seen.add((row[2], row[0]))
    counts[row[2]] += 1
  if counts != {p: int(state["done"].get(p, 0)) for p in proxies}:
    raise OutputError(f"score file {path!r}: rows per proxy {counts} disagree with its metadata "
                      f"{state['done']}")


class ScoreWriter:
  """Appends committed chunks to ``OUT.partial``; :meth:`finish` moves it to ``OUT``.

  Open with :func:`open_output`. ``done[proxy]`` is how many architectures (from the start of the
  list) are committed for each proxy.
  """

  def __init__(self, out: str, meta: dict, sha, resumed_from: int = 0):
    self.out, self.path = out, partial_path(out)
    self.meta, self._sha = meta, sha
    self.resumed_from = resumed_from
    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

  @property
  def settings(self) -> dict:
    """The run's settings recorded in the sidecar (``meta['settings']``)."""
    return self.meta["settings"]

  @property
  def done(self) -> dict:
    """A copy of ``{proxy: architectures committed}`` (each a prefix of the list)."""
    return dict(self.meta["state"]["done"])

  def append(self, proxy: str, lo: int, hi: int, data: bytes) -> None:
    """Commits the rows of ``archs[lo:hi]`` for ``proxy`` (must continue where it left off)."""
    state = self.meta["state"]
    if state["done"].get(proxy, 0) != lo:
      raise ValueError(f"chunk {lo}:{hi} of {proxy} does not continue the committed "
                       f"{state['done'].get(proxy, 0)} architectures")
    view = memoryview(data)
    while view:
      n = os.write(self._fd, view)
      view = view[n:]
    os.fsync(self._fd)
    self._sha.update(data)
    state["bytes"] += len(data)
    state["sha256"] = self._sha.hexdigest()
    state["rows"] += hi - lo
    state["done"][proxy] = hi
    self.meta["run"]["updated"] = _now()
    write_json_atomic(meta_path(self.path), self.meta)

  def note(self, **run_info) -> None:
    """Adds informational run details (mode, devices, seconds ...) to the next sidecar write."""
    self.meta["run"].update(run_info)

  def finish(self) -> None:
    """All chunks in: writes ``OUT.meta.json`` (complete) and renames ``OUT.partial`` to ``OUT``."""
    self.close()
    self.meta["state"]["complete"] = True
    self.meta["run"]["finished"] = _now()
    write_json_atomic(meta_path(self.out), self.meta)
    os.replace(self.path, self.out)
    _fsync_dir(self.out)
    try:
      os.remove(meta_path(self.path))
    except FileNotFoundError:
      pass

  def close(self) -> None:
    """Closes ``OUT.partial`` (no-op if already closed); :meth:`finish` calls it."""
    if self._fd is not None:
      os.close(self._fd)
      self._fd = None


def _fresh(out: str, settings: dict, run: dict) -> ScoreWriter:
  path = partial_path(out)
  with open(path, "wb") as f:
    f.write(HEADER)
    f.flush()
    os.fsync(f.fileno())
  sha = hashlib.sha256(HEADER)
  meta = {"format": FORMAT, "settings": settings,
          "state": {"bytes": len(HEADER), "sha256": sha.hexdigest(), "rows": 0,
                    "done": {p: 0 for p in settings["proxies"]}, "complete": False},
          "run": {"started": _now(), "updated": _now(), "resumes": 0, **run}}
  write_json_atomic(meta_path(path), meta)
  _fsync_dir(path)
  return ScoreWriter(out, meta, sha)


def _only_header(path: str) -> bool:
  with open(path, "rb") as f:
    data = f.read(len(HEADER) + 1)
  return HEADER.startswith(data) or data == HEADER


def open_output(out: str, settings: dict, *, resume: bool = False, overwrite: bool = False,
                run: Optional[dict] = None):
  """Opens ``OUT`` for an incremental run.

  Returns ``(writer, message)``: ``writer`` is None when ``OUT`` is already complete with these
  settings (``resume=True``); ``message`` says what was found (resumed at which point, bytes of an
  uncommitted chunk dropped), or is empty.

  Raises :class:`OutputError` when an interrupted run exists and neither ``resume`` nor
  ``overwrite`` is set, or when what exists is corrupt or was written with other settings.
  """
  run = dict(run or {})
  d = os.path.dirname(os.path.abspath(out))
  if not os.path.isdir(d):
    raise JaxnasInputError(f"output directory {d!r} does not exist")
  path, mpath = partial_path(out), meta_path(partial_path(out))
  has_data, has_meta = os.path.isfile(path), os.path.isfile(mpath)
  if overwrite:
    for p in (path, mpath):
      if os.path.exists(p):
        os.remove(p)
    return _fresh(out, settings, run), ""
  if not resume:
    if has_data or has_meta:
      raise OutputError(f"an interrupted run exists at {path!r}: pass --resume to continue it "
                        f"or --overwrite to discard it")
    return _fresh(out, settings, run), ""
  # --resume
  if has_data and not has_meta:
    if _only_header(path):   # killed between creating the file and its first sidecar
      return _fresh(out, settings, run), "restarting: the interrupted run had committed nothing"
    raise OutputError(f"{path!r} has no metadata sidecar {mpath!r}; cannot tell what in it is "
                      f"committed: refusing to resume (use --overwrite to discard it)")
  if has_meta and not has_data:
    meta = _read_meta(path)
    if meta["state"]["rows"] == 0:
      os.remove(mpath)
      return _fresh(out, settings, run), "restarting: the interrupted run had committed nothing"
    if os.path.isfile(out) and os.path.isfile(meta_path(out)):
      done = verify(out, settings)   # killed after the final rename: finish the clean-up
      if done["state"].get("complete") and done["state"]["sha256"] == meta["state"]["sha256"]:
        os.remove(mpath)
        return None, f"{out} is already complete"
    raise OutputError(f"{mpath!r} records {meta['state']['rows']} committed rows but "
                      f"{path!r} is missing")
  if has_data:
    meta = verify(path, settings)
    extra = meta.pop("uncommitted_bytes")
    if extra:
      with open(path, "r+b") as f:
        f.truncate(meta["state"]["bytes"])
        f.flush()
        os.fsync(f.fileno())
    meta["run"]["resumes"] = meta["run"].get("resumes", 0) + 1
    meta["run"].update(run)
    sha = hashlib.sha256()
    with open(path, "rb") as f:
      sha.update(f.read(meta["state"]["bytes"]))
    w = ScoreWriter(out, meta, sha, resumed_from=meta["state"]["rows"])
    msg = f"resuming {path}: {meta['state']['rows']} rows committed ({_done_text(meta)})"
    if extra:
      msg += f"; dropped {extra} bytes of an uncommitted chunk"
    return w, msg
  if os.path.exists(out):
    meta = verify(out, settings)
    if meta["state"].get("complete"):
      return None, f"{out} is already complete"
    raise OutputError(f"score file {out!r} is marked incomplete in its metadata")
  return _fresh(out, settings, run), ""


def _done_text(meta) -> str:
  return ", ".join(f"{p} {n}/{meta['settings']['n_archs']}"
                   for p, n in meta["state"]["done"].items())


def load(path: str):
  """Reads a complete, verified score file -> ``(meta, {proxy: (indices, scores)})``."""
  meta = verify(path)
  if not meta["state"].get("complete"):
    raise OutputError(f"score file {path!r} is not complete (resume the run that wrote it)")
  out: dict = {}
  with open(path, newline="", encoding="utf-8") as f:
    for row in csv.DictReader(f):
      out.setdefault(row["proxy"], ([], []))
      out[row["proxy"]][0].append(int(row["index"]))
      out[row["proxy"]][1].append(float(row["score"]))
  return meta, {p: (np.asarray(i), np.asarray(s)) for p, (i, s) in out.items()}


def merge(paths: Sequence[str], out: str) -> dict:
  """Joins the complete shard files of one run (``--shard I/N`` or ``--distributed``) into ``OUT``.

  Every shard must be complete and verified, with identical settings apart from ``shard``, and
  shards ``0..N-1`` must all be present exactly once. Rows come out in the order an unsharded run
  writes them (proxy-major, architectures in order). Returns the merged sidecar.
  """
  metas = [verify(p) for p in paths]
  for p, m in zip(paths, metas):
    if not m["state"].get("complete"):
      raise OutputError(f"shard {p!r} is not complete")
    if not m["settings"].get("shard"):
      raise OutputError(f"{p!r} is not a shard (its settings have no shard)")
  strip = lambda st: {k: v for k, v in st.items() if k not in SHARD_KEYS}
  base = strip(metas[0]["settings"])
  shards = {}
  for p, m in zip(paths, metas):
    diff = diff_settings(strip(m["settings"]), base)
    if diff:
      raise OutputError(f"shard {p!r} has other settings than {paths[0]!r}: " + "; ".join(diff))
    i, n = (int(t) for t in m["settings"]["shard"].split("/"))
    if i in shards:
      raise OutputError(f"shard {i}/{n} given twice ({shards[i][0]!r}, {p!r})")
    shards[i] = (p, n)
  n = shards[next(iter(shards))][1]
  if sorted(shards) != list(range(n)) or any(v[1] != n for v in shards.values()):
    raise OutputError(f"need shards 0..{n - 1} of {n} exactly once, got "
                      f"{sorted(f'{i}/{v[1]}' for i, v in shards.items())}")
  first = metas[0]["settings"]
  base.update(n_archs=first["all_n_archs"], archs_sha256=first["all_archs_sha256"], shard=None)
  by_proxy = {p: [] for p in base["proxies"]}
  for i in range(n):
    with open(shards[i][0], "rb") as f:
      data = f.read()[len(HEADER):]
    for line in data.splitlines(keepends=True):
      by_proxy[line.split(b",", 3)[2].decode()].append(line)
  body = HEADER + b"".join(b"".join(by_proxy[p]) for p in base["proxies"])
  tmp = f"{out}.tmp-{os.getpid()}"
  with open(tmp, "wb") as f:
    f.write(body)
    f.flush()
    os.fsync(f.fileno())
  rows = sum(len(v) for v in by_proxy.values())
  if any(len(v) != base["n_archs"] for v in by_proxy.values()):
    raise OutputError(f"the shards hold {({p: len(v) for p, v in by_proxy.items()})} rows per "
                      f"proxy, not {base['n_archs']} each")
  meta = {"format": FORMAT, "settings": base,
          "state": {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(), "rows": rows,
                    "done": {p: len(v) for p, v in by_proxy.items()}, "complete": True},
          "run": {"merged_from": list(paths), "finished": _now()}}
  write_json_atomic(meta_path(out), meta)
  os.replace(tmp, out)
  return meta
