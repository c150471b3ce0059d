"""Subcommands of the ``jaxnas`` command line, one module each.

A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int`` and
only composes library calls; :mod:`jaxnas.cli` finds every module here (names starting with ``_``
are helpers).
"""
