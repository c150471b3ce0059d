"""User-facing errors.

Every error raised on bad user input is a :class:`JaxnasInputError` whose message names the bad value
and what is allowed. The command line turns it into one line on stderr and exit status 2.
"""

from __future__ import annotations

from typing import Iterable


class JaxnasInputError(ValueError):
  """Bad input from a user: the message names the value and what is allowed."""


def unknown(kind: str, value, allowed: Iterable) -> JaxnasInputError:
  """Builds the standard 'unknown NAME' error, e.g. ``unknown proxy 'foo'; allowed: a, b``."""
  allowed = ", ".join(str(a) for a in allowed)
  return JaxnasInputError(f"unknown {kind} {value!r}; allowed: {allowed}")
