"""Score files that survive a killed run: incremental, atomic per chunk, resumable, self-describing.

A run writing ``OUT`` (long CSV ``index,arch_str,proxy,score``) works on ``OUT.partial`` and its
sidecar ``OUT.partial.meta.json``; ``OUT`` itself appears (by rename) only when every chunk is in,
so a file named ``OUT`` is always complete. Per chunk:

1. the chunk's rows are appended to ``OUT.partial`` and ``fsync``-ed;
2. the sidecar is replaced atomically (temporary file, ``fsync``, ``os.replace``) with the new
   committed length, row count, per-proxy progress and the SHA-256 of the committed bytes.

The committed state is what the sidecar says. A ``SIGKILL`` between 1 and 2, or inside 1 (a large
``write`` can be cut short), leaves bytes past the committed length: resuming drops them, so the
chunk in flight is lost and nothing else; no row is ever duplicated. Bytes there that cannot be
such a chunk (another proxy's rows, a foreign line), and any bytes past the end of a complete file,
are an error instead: jaxnas never drops what it did not write. The sidecar also records the
settings that give the scores their meaning (space, proxies, architectures, dataset and the
minibatch's hash, batch size, seed, per-proxy dtype and module configuration including BN mode,
matmul precision, library versions); resuming with other settings, or a file whose checksum, length
or rows disagree with its sidecar, raises :class:`OutputError` naming what differs. Nothing is ever
silently merged, and an existing ``OUT`` (or sidecar) is replaced only with ``overwrite``, when the
new run is complete. If another program replaces or removes ``OUT.partial`` under a running job
(``git stash`` of a tracked results file does), the next chunk stops the run instead of writing
to the unlinked file, and the committed rows are saved as ``OUT.partial.recovered``.

Row order: every proxy's rows are its architectures in the given order. A complete ``OUT`` is
proxy-major (all of the first proxy's rows, then the next proxy's), so a resumed, sharded or
joint run's file is byte-identical to an uninterrupted one-by-one run. An ``OUT.partial`` may
interleave the chunks of proxies scored in one pass (``grad_norm``, ``snip`` and ``plain`` share a
gradient and commit a chunk each in turn); :meth:`ScoreWriter.finish` puts the rows in proxy-major
order before the rename.
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

try:
  import fcntl
except ImportError:   # not POSIX: no lock
  fcntl = None

from jaxnas._files import atomic
from jaxnas.errors import JaxnasInputError

FORMAT = "jaxnas-scores/1"
COLUMNS = ("index", "arch_str", "proxy", "score")
HEADER = (",".join(COLUMNS) + "\r\n").encode()
#: Settings that differ between the shards of one run.
SHARD_KEYS = ("shard", "n_archs", "archs_sha256", "all_n_archs", "all_archs_sha256")


#: Settings named first when they differ (what a user chose), then the rest by name, then the
#: consequences (per-proxy settings) and library versions.
_ORDER = ("space", "proxies", "dataset", "seed", "batch_size", "resolution", "config", "precision",
          "n_archs", "archs_sha256", "shard", "all_n_archs", "all_archs_sha256", "batch_sha256")
_LAST = ("proxy_settings", "versions")
#: What the hashes of the settings stand for (named when they differ).
_HASHED = {"archs_sha256": " (the architecture list)",
           "all_archs_sha256": " (the architecture list)",
           "batch_sha256": " (the minibatch images and labels)"}


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
  with atomic(path, "w", encoding="utf-8") as f:
    json.dump(obj, f, indent=1, sort_keys=True)


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


#: module fields that choose how a network executes, not what it computes (the ``'eager'``
#: executor's ``unrolled``; ``relu_probe``, a hook the ReLU-probe proxies set at call time, None
#: in every recorded configuration; NB101's ``remat``, recomputing cells in the backward pass, and
#: ``compact``, the same network over only its real layers, set inside the per-sample-gradient
#: proxies by ``Network.compact``): files written before a space gained one still resume, and a
#: run with or without it continues the other's file
EXECUTION_FIELDS = ("unrolled", "relu_probe", "remat", "compact")
#: module hooks a proxy switches on (fisher's ``gates``, MeCo's and AZ-NAS' ``tap``, AZ-NAS'
#: ``block_input``) and their value when off: a file written before a space gained the hook reads
#: as the hook off, so it still resumes; a hook that is on is compared
HOOK_FIELDS = {"gates": False, "tap": None, "block_input": None}


def _gained_fields(space_name) -> dict:
  """The module fields the space named ``space_name`` gained after score files were written,
  with the value that computes what such a file holds (``SearchSpace.gained_fields``); {} for a
  space not registered here."""
  if not isinstance(space_name, str):
    return {}
  from jaxnas import spaces   # imported here: reading a score file needs no space otherwise
  try:
    return dict(spaces.get_space(space_name).gained_fields or {})
  except JaxnasInputError:
    return {}


def comparable(settings: dict) -> dict:
  """``settings`` without :data:`EXECUTION_FIELDS` (in the configuration and in each proxy's
  module configuration), with every absent :data:`HOOK_FIELDS` entry off and every absent field
  the space gained later (``SearchSpace.gained_fields``) at its earlier behaviour in the latter."""
  if isinstance(settings.get("config"), dict):
    settings = dict(settings, config={k: v for k, v in settings["config"].items()
                                      if k not in EXECUTION_FIELDS})
  ps = settings.get("proxy_settings")
  if not isinstance(ps, dict):
    return settings
  out, absent = {}, dict(HOOK_FIELDS, **_gained_fields(settings.get("space")))
  for name, p in ps.items():
    if isinstance(p, dict) and isinstance(p.get("module"), dict):
      module = dict(absent)
      module.update((k, v) for k, v in p["module"].items() if k not in EXECUTION_FIELDS)
      p = dict(p, module=module)
    out[name] = p
  return dict(settings, proxy_settings=out)


def diff_settings(a: dict, b: dict, prefix: str = "") -> list[str]:
  """Human-readable differences between two settings dicts (``key: a vs b``); at the top level,
  execution-only module fields (:func:`comparable`) are ignored."""
  if not prefix:
    a, b = comparable(a), comparable(b)
  out = []
  for k in sorted(set(a) | set(b), key=lambda k: (_ORDER.index(k) if k in _ORDER else
                                                  len(_ORDER) + (k in _LAST), k)):
    va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
    if isinstance(va, dict) and isinstance(vb, dict):
      out += diff_settings(va, vb, f"{prefix}{k}.")
    elif va != vb:
      what = ""
      if k.endswith("sha256"):   # show enough of a hash to tell them apart
        va, vb = (v[:12] + "..." if isinstance(v, str) else v for v in (va, vb))
        what = _HASHED.get(k, "")
      out.append(f"{prefix}{k}{what}: {va!r} in the file vs {vb!r} now")
  return out


def _nonneg_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool) and v >= 0


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
  settings, state = meta.get("settings"), meta.get("state")
  proxies = settings.get("proxies") if isinstance(settings, dict) else None
  if (not isinstance(proxies, list) or not proxies or not all(isinstance(p, str) for p in proxies)
      or len(set(proxies)) != len(proxies) or not _nonneg_int(settings.get("n_archs"))):
    raise OutputError(f"metadata {mp!r} lacks its settings (a list of distinct proxies, n_archs)")
  if not isinstance(state, dict) or not {"bytes", "sha256", "rows", "done"} <= set(state):
    raise OutputError(f"metadata {mp!r} lacks its committed state (bytes, sha256, rows, done)")
  n, done = settings["n_archs"], state["done"]
  bad = None
  if not _nonneg_int(state["bytes"]) or state["bytes"] < len(HEADER):
    bad = f"bytes {state['bytes']!r}"
  elif not _nonneg_int(state["rows"]):
    bad = f"rows {state['rows']!r}"
  elif not isinstance(state["sha256"], str):
    bad = f"sha256 {state['sha256']!r}"
  elif (not isinstance(done, dict) or set(done) != set(proxies)
        or not all(_nonneg_int(v) and v <= n for v in done.values())):
    bad = f"done {done!r} (want 0..{n} for each of {', '.join(proxies)})"
  elif state.get("complete") and any(v != n for v in done.values()):
    bad = f"done {done!r} of a complete file (want {n} for every proxy)"
  if bad is not None:
    raise OutputError(f"metadata {mp!r} has an invalid committed state: {bad}")
  if not isinstance(meta.get("run"), dict):
    meta["run"] = {}
  return meta


def verify(path: str, settings: Optional[dict] = None) -> dict:
  """Checks a score file (``OUT`` or ``OUT.partial``) against its sidecar; returns the sidecar.

  Checks: the sidecar is a well-formed :data:`FORMAT` sidecar; the file holds at least the
  committed bytes and their SHA-256 matches; the committed rows parse, have the expected columns,
  count, proxies, each proxy's rows in architecture order (proxy-major in a complete file), the
  same architectures for every proxy and no duplicate (proxy, index); when ``settings`` is given, the recorded settings equal them. A complete file
  holds nothing past its committed bytes. Past the committed length of a partial file only a chunk
  cut off by a kill may follow (rows of the proxy in progress, the last one possibly cut): its size
  is reported in ``meta['uncommitted_bytes']``. Raises :class:`OutputError` otherwise.
  """
  if os.path.isdir(path):
    raise OutputError(f"score file {path!r} is a directory")
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
  rows = _check_rows(path, meta)
  extra = size - state["bytes"]
  if extra and state.get("complete"):
    raise OutputError(f"score file {path!r} has {extra} bytes after its {state['rows']} committed "
                      f"rows, which jaxnas did not write (truncate it to {state['bytes']} bytes "
                      f"to use it)")
  if extra:
    _check_tail(path, meta, rows)
  meta["uncommitted_bytes"] = extra
  return meta


def _parse_rows(path: str, data: bytes, first_line: int) -> list:
  try:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
  except (UnicodeDecodeError, csv.Error) as e:
    raise OutputError(f"score file {path!r} from line {first_line} is not UTF-8 CSV "
                      f"({type(e).__name__})") from None


def _check_row(path: str, n: int, row: list, proxies) -> None:
  if len(row) != len(COLUMNS) or row[2] not in proxies:
    raise OutputError(f"score file {path!r} line {n} is malformed: {row!r} (want "
                      f"{','.join(COLUMNS)} with proxy one of {', '.join(proxies)})")
  if not row[0].isdigit() or not row[0].isascii():
    raise OutputError(f"score file {path!r} line {n}: index {row[0]!r} is not a non-negative "
                      f"integer")
  try:
    float(row[3])
  except ValueError:
    raise OutputError(f"score file {path!r} line {n}: score {row[3]!r} is not a number") from None


def _check_rows(path: str, meta: dict) -> list:
  """Checks the committed rows against the sidecar; returns them (``[index, arch_str, proxy,
  score]`` lists)."""
  state, settings = meta["state"], meta["settings"]
  proxies, done = settings["proxies"], state["done"]
  with open(path, "rb") as f:
    data = f.read(state["bytes"])
  if not data.startswith(HEADER):
    raise OutputError(f"score file {path!r} does not start with the header {','.join(COLUMNS)}")
  if len(data) > len(HEADER) and not data.endswith(b"\r\n"):
    raise OutputError(f"score file {path!r}: its committed bytes end inside a row")
  rows = _parse_rows(path, data[len(HEADER):], 2)
  if len(rows) != state["rows"]:
    raise OutputError(f"score file {path!r} holds {len(rows)} committed rows, its metadata "
                      f"{state['rows']}")
  if len(rows) != sum(done.values()):
    raise OutputError(f"score file {path!r}: its {len(rows)} committed rows disagree with the "
                      f"rows per proxy of its metadata {done}")
  major = [p for p in proxies for _ in range(done[p])] if state.get("complete") else None
  seen, count, first = set(), {p: 0 for p in proxies}, []
  for n, row in enumerate(rows, start=2):
    _check_row(path, n, row, proxies)
    if major is not None and row[2] != major[n - 2]:
      raise OutputError(f"score file {path!r} line {n}: a row of proxy {row[2]!r} where its "
                        f"metadata {done} puts {major[n - 2]!r} (a complete file is proxy-major)")
    if (row[2], row[0]) in seen:
      raise OutputError(f"score file {path!r} line {n}: duplicate row for proxy {row[2]!r}, "
                        f"index {row[0]}")
    seen.add((row[2], row[0]))
    j = count[row[2]]
    count[row[2]] = j + 1
    if j == len(first):
      first.append((row[0], row[1], row[2]))
    elif first[j][:2] != (row[0], row[1]):
      raise OutputError(f"score file {path!r} line {n}: architecture {j} of proxy {row[2]!r} is "
                        f"index {row[0]}, of proxy {first[j][2]!r} index {first[j][0]}")
  if count != done:
    raise OutputError(f"score file {path!r}: its committed rows per proxy {count} disagree with "
                      f"its metadata {done}")
  return rows


def _check_tail(path: str, meta: dict, rows: list) -> None:
  """Bytes past the committed length must be a chunk cut off by a kill: rows of the proxy in
  progress that continue its committed ones (the last row possibly cut), then possibly NULs."""
  state, settings = meta["state"], meta["settings"]
  proxies, done, n_archs = settings["proxies"], state["done"], settings["n_archs"]
  with open(path, "rb") as f:
    f.seek(state["bytes"])
    tail = f.read()
  where = (f"score file {path!r} has {len(tail)} bytes after its {state['rows']} committed rows "
           f"that are not a chunk cut off by a kill")
  fix = (f": truncate it to {state['bytes']} bytes (or remove them) to resume, or pass "
         f"--overwrite to discard the run")
  body = tail.rstrip(b"\0")
  todo = [p for p in proxies if done[p] < n_archs]
  if not todo:
    raise OutputError(f"{where} (every row is committed){fix}")
  line0 = state["rows"] + 2
  *lines, last = body.split(b"\r\n")
  if b"\n" in last or b"\r" in last[:-1] or b"\0" in body or not body.isascii():
    raise OutputError(f"{where} (line {line0 + len(lines)} is not a jaxnas row){fix}")
  proxy = todo[0]   # the chunk's proxy: named by its first whole row (joint passes interleave)
  if lines:
    head = _parse_rows(path, lines[0], line0)
    if len(head) == 1 and len(head[0]) == len(COLUMNS) and head[0][2] in todo:
      proxy = head[0][2]
  if done[proxy] + len(lines) + (1 if last else 0) > n_archs:
    raise OutputError(f"{where} (more rows than {proxy!r} has architectures left){fix}")
  ref = _arch_order(rows)[done[proxy]:]   # the architectures another proxy has committed
  have = {r[0] for r in rows if r[2] == proxy}
  for k, line in enumerate(lines):
    parsed = _parse_rows(path, line, line0 + k)
    try:
      if len(parsed) != 1:
        raise OutputError(f"line {line0 + k} is not one row")
      _check_row(path, line0 + k, parsed[0], [proxy])
      if parsed[0][0] in have or (k < len(ref) and ref[k][:2] != parsed[0][:2]):
        raise OutputError(f"line {line0 + k} is not the next architecture of {proxy!r}")
    except OutputError as e:
      raise OutputError(f"{where} ({str(e).replace(f'score file {path!r} ', '')}){fix}") from None
    have.add(parsed[0][0])
  if last and not last[:1].isdigit():
    raise OutputError(f"{where} (line {line0 + len(lines)} does not start with an index){fix}")


def _arch_order(rows: list) -> list:
  """The ``[index, arch_str]`` of each position that some proxy's committed rows reach."""
  count: dict = {}
  order = []
  for r in rows:
    j = count[r[2]] = count.get(r[2], 0) + 1
    if j > len(order):
      order.append(r[:2])
  return order


def _proxy_major(data: bytes, proxies) -> bytes:
  """The rows of ``data`` (header first) in proxy-major order, each proxy's rows in file order."""
  by_proxy: dict = {p: [] for p in proxies}
  for line in data[len(HEADER):].split(b"\r\n")[:-1]:   # every row ends with CRLF
    by_proxy[next(csv.reader([line.decode("utf-8")]))[2]].append(line + b"\r\n")
  return HEADER + b"".join(b"".join(by_proxy[p]) for p in proxies)


class ScoreWriter:
  """Appends committed chunks to ``OUT.partial``; :meth:`finish` moves it to ``OUT``.

  Open with :func:`open_output`. ``done[proxy]`` is how many architectures (from the start of the
  list) are committed for each proxy.
  """

  def __init__(self, out: str, meta: dict, sha, resumed_from: int = 0, fd=None):
    self.out, self.path = out, partial_path(out)
    self.meta, self._sha = meta, sha
    self.resumed_from = resumed_from
    self._fd = _locked(self.path) if fd is None else fd

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
    self._check_still_ours()
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

  def _check_still_ours(self) -> None:
    """Raises :class:`OutputError` when ``OUT.partial`` no longer names the file this run writes
    (another program replaced or removed it, e.g. ``git stash`` or ``git checkout`` of a tracked
    results file): later chunks would go to a file nobody can see. The committed rows are first
    saved with their sidecar as ``OUT.partial.recovered`` (a valid partial file)."""
    mine = os.fstat(self._fd)
    try:
      now = os.stat(self.path)
      same = (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)
    except FileNotFoundError:
      same = False
    if same:
      return
    saved = self.path + ".recovered"
    n = self.meta["state"]["bytes"]
    with atomic(saved, "wb") as f:
      f.write(os.pread(self._fd, n, 0))
    write_json_atomic(meta_path(saved), self.meta)
    rows = self.meta["state"]["rows"]
    raise OutputError(
        f"{self.path!r} was replaced or removed while this run was writing it (by another "
        f"program, e.g. git stash or git checkout of a tracked results file); its {rows} "
        f"committed rows are saved as {saved!r} with its sidecar: move both over "
        f"{self.path!r} and its sidecar, then rerun with --resume")

  def note(self, **run_info) -> None:
    """Adds informational run details (mode, devices, seconds ...) to the next sidecar write."""
    self.meta["run"].update(run_info)

  def finish(self) -> None:
    """All chunks in: writes ``OUT.meta.json`` (complete) and renames ``OUT.partial`` to ``OUT``.

    A file whose proxies interleave (a joint pass) is first rewritten proxy-major into a temporary
    file, which is renamed to ``OUT``; ``OUT.partial`` and its sidecar stay valid until the end,
    so a kill anywhere here leaves a run that ``resume`` finishes.
    """
    self.close()
    state = self.meta["state"]
    with open(self.path, "rb") as f:
      data = f.read(state["bytes"])
    ordered = _proxy_major(data, self.meta["settings"]["proxies"])
    source = self.path
    if ordered != data:
      source = self.path + ".ordered"
      with open(source, "wb") as f:
        f.write(ordered)
        f.flush()
        os.fsync(f.fileno())
      state["sha256"] = hashlib.sha256(ordered).hexdigest()
    state["complete"] = True
    self.meta["run"]["finished"] = _now()
    write_json_atomic(meta_path(self.out), self.meta)
    os.replace(source, self.out)
    _fsync_dir(self.out)
    for p in ([self.path] if source != self.path else []) + [meta_path(self.path)]:
      try:
        os.remove(p)
      except FileNotFoundError:
        pass

  def close(self) -> None:
    """Closes ``OUT.partial`` (no-op if already closed); :meth:`finish` calls it."""
    if self._fd is not None:
      os.close(self._fd)
      self._fd = None


def _locked(path: str) -> int:
  """An append descriptor of ``path`` holding its exclusive lock (``flock``; released when the
  descriptor closes), so that two runs never write, truncate or replace one file at once."""
  fd = os.open(path, os.O_RDWR | os.O_APPEND)   # readable: a replaced file's rows are saved
  if fcntl is not None:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:   # a file system without locks (ENOLCK ...): run unlocked
      if not isinstance(e, BlockingIOError):
        return fd
      os.close(fd)
      raise OutputError(f"another run is writing {path!r} (it holds the file's lock): let it "
                        f"finish or stop it, then --resume") from None
  return fd


def _fresh(out: str, settings: dict, run: dict, fd=None) -> ScoreWriter:
  """A new ``OUT.partial`` holding the header (``fd``: the held descriptor of one to restart)."""
  path = partial_path(out)
  if fd is None:
    with open(path, "wb"):
      pass
    fd = _locked(path)
  os.ftruncate(fd, 0)
  os.write(fd, HEADER)
  os.fsync(fd)
  sha = hashlib.sha256(HEADER)
  meta = {"format": FORMAT, "settings": settings,
          "state": {"bytes": len(HEADER), "sha256": sha.hexdigest(), "rows": 0,
                    "done": {p: 0 for p in settings["proxies"]}, "complete": False},
          "run": {"started": _now(), "updated": _now(), "resumes": 0, **run}}
  write_json_atomic(meta_path(path), meta)
  _fsync_dir(path)
  return ScoreWriter(out, meta, sha, fd=fd)


def _only_header(path: str) -> bool:
  with open(path, "rb") as f:
    data = f.read(len(HEADER) + 1)
  return HEADER.startswith(data) or data == HEADER


def _refuse_existing(out: str, settings: dict) -> OutputError:
  """The error for a run without ``resume``/``overwrite`` that finds ``OUT`` or its sidecar."""
  if not os.path.exists(out):
    return OutputError(f"{meta_path(out)!r} exists but {out!r} does not: pass --overwrite to "
                       f"start again (replacing the sidecar), or choose another --out")
  try:
    meta = verify(out, settings)
  except OutputError as e:
    return OutputError(f"--out {out!r} exists: {e}; pass --overwrite to replace it, or choose "
                       f"another --out")
  if meta["state"].get("complete"):
    return OutputError(f"--out {out!r} exists and is complete with these settings: pass --resume "
                       f"to keep it or --overwrite to score again")
  return OutputError(f"--out {out!r} exists but is marked incomplete in its metadata: pass "
                     f"--overwrite to replace it, or choose another --out")


def open_output(out: str, settings: dict, *, resume: bool = False, overwrite: bool = False,
                run: Optional[dict] = None):
  """Opens ``OUT`` for an incremental run.

  Returns ``(writer, message)``: ``writer`` is None when ``OUT`` is already complete with these
  settings (``resume=True``); ``message`` says what was found (resumed at which point, bytes of an
  uncommitted chunk dropped), or is empty.

  Nothing that exists is replaced or deleted unless ``overwrite`` is set (then only when the new
  run finishes: ``OUT`` is renamed over). Without ``resume``/``overwrite`` an existing ``OUT``, its
  sidecar or an interrupted run raises :class:`OutputError`; with ``resume`` so does anything
  corrupt, foreign, or written with other settings. Each message names the way out.
  """
  run = dict(run or {})
  if resume and overwrite:
    raise JaxnasInputError("give only one of --resume, --overwrite")
  d = os.path.dirname(os.path.abspath(out))
  if not os.path.isdir(d):
    raise JaxnasInputError(f"output directory {d!r} does not exist")
  path, mpath = partial_path(out), meta_path(partial_path(out))
  for p in (out, meta_path(out), path, mpath):
    if os.path.isdir(p):
      raise OutputError(f"{p!r} is a directory, not a score file: choose another --out")
  has_data, has_meta = os.path.isfile(path), os.path.isfile(mpath)
  if has_data:   # held from here on, so no other run appends, truncates or removes it meanwhile
    fd = _locked(path)
    try:
      writer, msg = _open_held(out, settings, resume, overwrite, run, has_data, has_meta, fd)
    except BaseException:
      os.close(fd)
      raise
    if writer is None or writer._fd != fd:
      os.close(fd)
    return writer, msg
  return _open_held(out, settings, resume, overwrite, run, has_data, has_meta, None)


def _open_held(out, settings, resume, overwrite, run, has_data, has_meta, fd):
  path, mpath = partial_path(out), meta_path(partial_path(out))
  if overwrite:   # the held partial is restarted in place
    if os.path.exists(mpath):
      os.remove(mpath)
    return _fresh(out, settings, run, fd), ""
  if not resume:
    if has_data or has_meta:
      raise OutputError(f"an interrupted run exists at {path!r}: pass --resume to continue it "
                        f"or --overwrite to discard it")
    if os.path.exists(out) or os.path.exists(meta_path(out)):
      raise _refuse_existing(out, settings)
    return _fresh(out, settings, run), ""
  try:
    return _resume(out, settings, run, has_data, has_meta, fd)
  except OutputError as e:
    if "--overwrite" in str(e):
      raise
    raise OutputError(f"{e}; pass --overwrite to discard it and start again") from None


def _resume(out: str, settings: dict, run: dict, has_data: bool, has_meta: bool, fd=None):
  path, mpath = partial_path(out), meta_path(partial_path(out))
  if has_data and not has_meta:
    if _only_header(path):   # killed between creating the file and its first sidecar
      return _fresh(out, settings, run, fd), "restarting: the interrupted run had committed nothing"
    raise OutputError(f"{path!r} has no metadata sidecar {mpath!r}; cannot tell what in it is "
                      f"committed: refusing to resume")
  if has_meta and not has_data:
    meta = _read_meta(path)
    if meta["state"]["rows"] == 0:
      os.remove(mpath)
      return _fresh(out, settings, run), "restarting: the interrupted run had committed nothing"
    if os.path.isfile(out) and os.path.isfile(meta_path(out)):
      done = verify(out, settings)   # killed after the final rename: finish the clean-up
      if done["state"].get("complete") and done["state"]["rows"] == meta["state"]["rows"]:
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
    w = ScoreWriter(out, meta, sha, resumed_from=meta["state"]["rows"], fd=fd)
    msg = f"resuming {path}: {meta['state']['rows']} rows committed ({_done_text(meta)})"
    if extra:
      msg += f"; dropped {extra} bytes of an uncommitted chunk"
    return w, msg
  if os.path.exists(out):
    meta = verify(out, settings)
    if meta["state"].get("complete"):
      return None, f"{out} is already complete"
    raise OutputError(f"score file {out!r} is marked incomplete in its metadata")
  if os.path.exists(meta_path(out)):
    raise OutputError(f"{meta_path(out)!r} exists but {out!r} does not: nothing to resume")
  return _fresh(out, settings, run), ""


def _done_text(meta) -> str:
  return ", ".join(f"{p} {n}/{meta['settings']['n_archs']}"
                   for p, n in meta["state"]["done"].items())


def load(path: str):
  """Reads a complete, verified score file -> ``(meta, {proxy: (indices, scores)})``."""
  meta = verify(path)
  if not meta["state"].get("complete"):
    raise OutputError(f"score file {path!r} is not complete (resume the run that wrote it)")
  with open(path, "rb") as f:
    data = f.read(meta["state"]["bytes"])
  out: dict = {p: ([], []) for p in meta["settings"]["proxies"]}
  for row in _parse_rows(path, data[len(HEADER):], 2):
    out[row[2]][0].append(int(row[0]))
    out[row[2]][1].append(float(row[3]))
  return meta, {p: (np.asarray(i), np.asarray(s)) for p, (i, s) in out.items()}


def merge(paths: Sequence[str], out: str, overwrite: bool = False) -> dict:
  """Joins the complete shard files of one run (``--shard I/N`` or ``--distributed``) into ``OUT``.

  Every shard must be complete and verified, with identical settings apart from ``shard``, and
  shards ``0..N-1`` must all be present exactly once. Rows come out in the order an unsharded run
  writes them (proxy-major, architectures in order). An existing ``OUT`` (or its sidecar) is
  replaced only with ``overwrite``. Returns the merged sidecar.
  """
  paths = list(paths)
  if not paths:
    raise JaxnasInputError("no shard files to merge")
  d = os.path.dirname(os.path.abspath(out))
  if not os.path.isdir(d):
    raise JaxnasInputError(f"output directory {d!r} does not exist")
  same = [p for p in paths if os.path.abspath(p) == os.path.abspath(out)]
  if same:
    raise OutputError(f"the merged file {out!r} would replace the shard {same[0]!r}: choose "
                      f"another --out")
  for p in (out, meta_path(out)):
    if os.path.isdir(p):
      raise OutputError(f"{p!r} is a directory, not a score file: choose another --out")
  if not overwrite and (os.path.exists(out) or os.path.exists(meta_path(out))):
    raise OutputError(f"--out {out!r} (or its sidecar) exists: pass --overwrite to replace it "
                      f"with the merged file, or choose another --out")
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
    try:
      i, n = (int(t) for t in m["settings"]["shard"].split("/"))
    except (AttributeError, ValueError):
      raise OutputError(f"shard {p!r}: its metadata's shard {m['settings']['shard']!r} is not "
                        f"I/N") from None
    if i in shards:
      raise OutputError(f"shard {i}/{n} given twice ({shards[i][0]!r}, {p!r})")
    shards[i] = (p, n)
  n = shards[next(iter(shards))][1]
  if sorted(shards) != list(range(n)) or any(v[1] != n for v in shards.values()):
    raise OutputError(f"need shards 0..{n - 1} of {n} exactly once, got "
                      f"{sorted(f'{i}/{v[1]}' for i, v in shards.items())}")
  first = metas[0]["settings"]
  base.update(n_archs=first["all_n_archs"], archs_sha256=first["all_archs_sha256"], shard=None)
  data = HEADER
  for i in range(n):
    with open(shards[i][0], "rb") as f:
      data += f.read(metas[paths.index(shards[i][0])]["state"]["bytes"])[len(HEADER):]
  body = _proxy_major(data, base["proxies"])
  per_proxy = {p: sum(m["state"]["done"][p] for m in metas) for p in base["proxies"]}
  if any(v != base["n_archs"] for v in per_proxy.values()):
    raise OutputError(f"the shards hold {per_proxy} rows per proxy, not {base['n_archs']} each")
  meta = {"format": FORMAT, "settings": base,
          "state": {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                    "rows": sum(per_proxy.values()), "done": per_proxy, "complete": True},
          "run": {"merged_from": list(paths), "finished": _now()}}
  with atomic(out, "wb") as f:
    f.write(body)
    f.flush()
    os.fsync(f.fileno())
    write_json_atomic(meta_path(out), meta)   # the sidecar first, then the file it describes
  return meta
