"""Atomic file writes: a temporary file beside the target, ``fsync``, then ``os.replace``.

A reader sees the old file or the new one, never a torn one. A process killed mid-write leaves
its ``PATH.tmp-PID``; the next write of ``PATH`` removes such files of processes no longer running.
"""

from __future__ import annotations

import contextlib
import os


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:   # someone else's live process
    return True
  return True


def remove_stale(path: str) -> list[str]:
  """Removes the ``PATH.tmp-PID`` files of processes that are no longer running; returns them."""
  d = os.path.dirname(os.path.abspath(path))
  stem = os.path.basename(path) + ".tmp-"
  gone = []
  for name in os.listdir(d):
    pid = name[len(stem):]
    if name.startswith(stem) and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
      with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(d, name))
        gone.append(os.path.join(d, name))
  return gone


@contextlib.contextmanager
def atomic(path: str, mode: str = "w", **open_kwargs):
  """``with atomic(path) as f: f.write(...)``: ``path`` is replaced only if the block completes."""
  remove_stale(path)
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    with open(tmp, mode, **open_kwargs) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
