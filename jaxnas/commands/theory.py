"""``jaxnas theory``: numerical checks of the NTK theory behind NASI and HNAS.

Writes ``DIR/theory.json`` (the measured figures: NT implementations, NASI Eq. 4, 9, 10, 11,
Prop. 2, HNAS' log-log relations, width convergence to the analytic stax NTK, NTK quantities vs
200-epoch accuracy) and one plot per check. ``--quick`` uses small networks and few architectures
(minutes on a CPU); the default (``--size full``) makes the README figures.
"""

NAME = "theory"
HELP = "NTK theory checks (NASI/HNAS): writes DIR/theory.json and one plot per check"


def add_arguments(s):
  """Adds the ``jaxnas theory`` options to the subparser ``s``."""
  s.add_argument("--out", required=True, help="existing output directory")
  s.add_argument("--quick", action="store_true", help="small networks, few architectures")
  s.add_argument("--size", choices=("tiny", "quick", "full"), default=None,
                 help="explicit size (tiny: the test suite's); default full, or quick with --quick")
  s.add_argument("--checks", default=None,
                 help="comma-separated subset of: nt_implementations, identities, linearized, "
                      "width, archs, hnas (default all)")
  s.add_argument("--seed", type=int, default=0)
  s.add_argument("--resume", action="store_true",
                 help="keep the checks already completed in DIR/theory.json (same configuration) "
                      "and run only the rest; the JSON is rewritten after every check")


def run(args) -> int:
  """Runs ``jaxnas theory``; returns the exit code."""
  import dataclasses
  import os
  from jaxnas.errors import JaxnasInputError
  from jaxnas.theory import config, runner
  if args.quick and args.size not in (None, "quick"):
    raise JaxnasInputError(f"--quick conflicts with --size {args.size}")
  size = args.size or ("quick" if args.quick else "full")
  parent = os.path.dirname(os.path.abspath(args.out))
  if not os.path.isdir(parent):
    raise JaxnasInputError(f"the parent of output directory {args.out!r} ({parent!r}) does not "
                           f"exist")
  if os.path.exists(args.out) and not os.path.isdir(args.out):
    raise JaxnasInputError(f"--out {args.out!r} exists and is not a directory")
  os.makedirs(args.out, exist_ok=True)
  checks = runner.parse_checks(args.checks)
  cfg = dataclasses.replace(config.CONFIGS[size], seed=args.seed)
  print(f"jaxnas theory: size {size}, checks {', '.join(checks)} -> {args.out}")
  obj = runner.run(cfg, args.out, checks, resume=args.resume)
  print(runner.summary(obj))
  print(f"-> {os.path.join(args.out, 'theory.json')} and {len(obj['plots'])} plots")
  return 0
