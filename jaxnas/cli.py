"""The ``jaxnas`` command: parses arguments and dispatches to :mod:`jaxnas.commands`.

Every bad input exits with status 2 and one line on stderr naming the bad value and what is
allowed; output files are written atomically, so a failed run never leaves a file that looks
complete.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from jaxnas.errors import JaxnasInputError


class _Parser(argparse.ArgumentParser):
  """argparse with one-line errors (raised as :class:`JaxnasInputError`, exit status 2)."""

  def error(self, message):
    raise JaxnasInputError(f"{self.prog}: {message}")


def command_modules():
  """The command modules of :mod:`jaxnas.commands`, in name order."""
  import jaxnas.commands as pkg
  mods = [importlib.import_module(f"{pkg.__name__}.{m.name}")
          for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
  return sorted(mods, key=lambda m: m.NAME)


def build_parser() -> argparse.ArgumentParser:
  """The ``jaxnas`` argument parser: ``--version`` and one subcommand per command module.

  Each subparser gets its module's options (``add_arguments``) and ``func=module.run``.
  """
  from jaxnas import __version__
  p = _Parser(prog="jaxnas", description="Training-free neural architecture search in JAX.")
  p.add_argument("--version", action="version", version=f"jaxnas {__version__}")
  sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
  for mod in command_modules():
    s = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
    mod.add_arguments(s)
    s.set_defaults(func=mod.run)
  return p


def main(argv=None) -> int:
  """Runs ``jaxnas`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

  The status is the command's (0 when it returns None); 2 when no command is given (the help is
  printed) or on bad input (one line on stderr); 1 when the system refuses a file operation
  (permission, disk full: one line naming the file) or when XLA runs out of memory (one line
  with what to try); 130 on Ctrl-C.
  """
  parser = build_parser()
  try:
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
      parser.print_help()
      return 2
    return int(args.func(args) or 0)
  except JaxnasInputError as e:
    print(f"jaxnas: error: {str(e).replace(chr(10), ' ')}", file=sys.stderr)
    return 2
  except OSError as e:
    where = f" {e.filename!r}" if e.filename is not None else ""
    print(f"jaxnas: error: {str(e.strerror or e).replace(chr(10), ' ')}{where}", file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    print("jaxnas: interrupted", file=sys.stderr)
    return 130
  except RuntimeError as e:
    if not out_of_memory(e):
      raise
    print(f"jaxnas: error: {OUT_OF_MEMORY_HINT} ({str(e).splitlines()[0]})", file=sys.stderr)
    return 1


#: What to try when XLA cannot allocate a buffer (the message :func:`main` prints).
OUT_OF_MEMORY_HINT = (
    "out of memory: score fewer architectures at once (--chunk-size), a smaller minibatch "
    "(--batch-size), or one architecture's discrete network at a time (--mode eager, where the "
    "space unrolls); rows already written are kept, rerun with --resume")


def out_of_memory(e: BaseException) -> bool:
  """Whether ``e`` is XLA failing to allocate (``JaxRuntimeError``; ``XlaRuntimeError`` on older
  jax releases) with status ``RESOURCE_EXHAUSTED``."""
  return (type(e).__name__ in ("JaxRuntimeError", "XlaRuntimeError")
          and str(e).startswith("RESOURCE_EXHAUSTED"))


if __name__ == "__main__":
  sys.exit(main())
