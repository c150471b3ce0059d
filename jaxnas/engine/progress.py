"""A dependency-free progress bar for long scoring runs: done/total, architectures per second, ETA.

On a terminal it redraws one line (``\\r``); elsewhere (logs, CI) it prints a plain line at most
every ``interval`` seconds. The rate counts only work after the first chunk of each phase (that
chunk includes compilation), so the ETA is the steady-state one.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional, TextIO


def format_seconds(s: float) -> str:
  """``3725.2 -> '1:02:05'``; ``'?'`` for unknown."""
  if s is None or not s == s or s == float("inf"):
    return "?"
  s = int(round(s))
  h, rem = divmod(s, 3600)
  m, sec = divmod(rem, 60)
  return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
  """Callable progress reporter: ``p(n)`` after each chunk of ``n`` architectures.

  Args:
    total: architectures (x proxies) to do in the whole run.
    done: already done before this process started (resumed runs).
    stream: where to write (default stderr).
    interval: seconds between plain lines when ``stream`` is not a terminal.
    width: bar width in characters.
    clock: time source (tests).
  """

  def __init__(self, total: int, done: int = 0, stream: Optional[TextIO] = None,
               interval: float = 30.0, width: int = 28,
               clock: Callable[[], float] = time.perf_counter, tty: Optional[bool] = None):
    self.total, self.done = int(total), int(done)
    self.stream = sys.stderr if stream is None else stream
    self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
    self.interval, self.width, self.clock = interval, width, clock
    self.label = ""
    self.t0 = clock()
    self._phase_t = self._phase_n = None   # steady-state reference point of the current phase
    self._rate_t, self._rate_n = 0.0, 0     # steady-state time and archs over finished phases
    self._last_print = self.t0   # plain lines: the first after `interval` seconds

  def phase(self, label: str) -> None:
    """Starts a new phase (e.g. the next proxy); its first chunk is excluded from the rate."""
    self._close_phase()
    self.label = label
    self._phase_t = self._phase_n = None

  def _close_phase(self):
    if self._phase_t is not None:
      self._rate_t += self.clock() - self._phase_t
      self._rate_n += self.done - self._phase_n
      self._phase_t = None

  def rate(self) -> Optional[float]:
    """Steady-state architectures per second (None before a second chunk)."""
    t, n = self._rate_t, self._rate_n
    if self._phase_t is not None:
      t += self.clock() - self._phase_t
      n += self.done - self._phase_n
    return n / t if n > 0 and t > 0 else None

  def eta(self) -> Optional[float]:
    """Seconds left until ``total`` at the steady-state :meth:`rate` (None while it is unknown)."""
    r = self.rate()
    return (self.total - self.done) / r if r else None

  def line(self) -> str:
    """The status line: bar, ``done/total``, phase label, rate, elapsed time and ETA."""
    frac = self.done / self.total if self.total else 1.0
    fill = int(round(frac * self.width))
    r = self.rate()
    rate = f"{r:.3g} arch/s" if r else "- arch/s"
    label = f" {self.label}" if self.label else ""
    return (f"[{'#' * fill}{'.' * (self.width - fill)}] {self.done}/{self.total}{label}  {rate}"
            f"  elapsed {format_seconds(self.clock() - self.t0)}  ETA {format_seconds(self.eta())}")

  def __call__(self, n: int) -> None:
    self.done += int(n)
    if self._phase_t is None:
      self._phase_t, self._phase_n = self.clock(), self.done
    now = self.clock()
    if self.tty:
      self.stream.write("\r" + self.line())
      self.stream.flush()
    elif now - self._last_print >= self.interval:
      self.stream.write(self.line() + "\n")
      self.stream.flush()
      self._last_print = now

  def close(self) -> None:
    """Ends the bar (a final newline on a terminal)."""
    self._close_phase()
    if self.tty:
      self.stream.write("\r" + self.line() + "\n")
      self.stream.flush()
