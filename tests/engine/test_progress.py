"""The progress bar: counts, steady-state rate (first chunk of a phase excluded), ETA, output."""

import io

from jaxnas.engine.progress import Progress, format_seconds


class Clock:
  def __init__(self):
    self.t = 0.0

  def __call__(self):
    return self.t


def test_rate_excludes_compilation_and_eta_follows():
  clock, out = Clock(), io.StringIO()
  p = Progress(100, stream=out, clock=clock, tty=True)
  p.phase("synflow")
  clock.t = 30.0          # first chunk: 30 s of compilation
  p(10)
  assert p.rate() is None
  clock.t = 32.0
  p(10)                   # steady state: 10 archs in 2 s
  assert p.rate() == 5.0 and p.eta() == 80 / 5.0
  line = out.getvalue().split("\r")[-1]
  assert "20/100 synflow" in line and "5 arch/s" in line and "ETA 0:16" in line
  p.phase("nwot")         # a new proxy compiles again: its first chunk is excluded too
  clock.t = 50.0
  p(10)
  clock.t = 51.0
  p(10)                   # 10 archs in 1 s; overall steady state 20 archs in 3 s
  assert abs(p.rate() - 20 / 3) < 1e-12
  p.close()
  assert out.getvalue().endswith("\n") and "40/100" in out.getvalue()


def test_plain_lines_are_rate_limited_and_resumed_counts_start_at_done():
  clock, out = Clock(), io.StringIO()
  p = Progress(50, done=20, stream=out, clock=clock, tty=False, interval=10)
  clock.t = 1.0
  p(5)
  assert out.getvalue() == ""       # short runs print nothing to logs
  clock.t = 12.0
  p(5)
  assert out.getvalue().count("\n") == 1 and "30/50" in out.getvalue()


def test_format_seconds():
  assert format_seconds(3725.2) == "1:02:05"
  assert format_seconds(59) == "0:59"
  assert format_seconds(None) == "?"
