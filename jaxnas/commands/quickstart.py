"""``jaxnas quickstart``: the main job on embedded defaults.

Scores a seeded sample of NAS-Bench-201 architectures with several proxies on the bundled real
CIFAR-10 images and prints their rank correlation with the bundled 200-epoch accuracies.
"""

import time

from jaxnas.commands import _io

NAME = "quickstart"
HELP = "the main job: score a sample of NB201 on bundled CIFAR-10 and correlate with ground truth"
DEFAULT_PROXIES = "params,flops,synflow"


def add_arguments(s):
  """Adds the ``jaxnas quickstart`` options to the subparser ``s``."""
  s.add_argument("--sample", type=int, default=200)
  s.add_argument("--proxies", default=DEFAULT_PROXIES)
  s.add_argument("--seed", type=int, default=0)
  s.add_argument("--batch-size", type=int, default=64)
  s.add_argument("--out", default=None, help="also write the scores CSV")
  s.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run(args) -> int:
  """Runs ``jaxnas quickstart``; returns the exit code."""
  from jaxnas import data, engine
  from jaxnas.commands.score import score_rows
  from jaxnas.proxies import expand, is_pooled
  from jaxnas.spaces import get_space
  space = get_space("nb201")
  proxies = _io.split(args.proxies)
  expand(proxies)  # unknown names raise before any work
  _io.check_new_output(args.out, args.overwrite)
  archs = _io.select_archs(space, None, None, args.sample, args.seed)
  batch = data.minibatch("cifar10-bundled", args.batch_size, seed=args.seed)
  print(f"jaxnas quickstart: {len(archs)} NB201 architectures (seed {args.seed}), "
        f"{len(batch.x)} bundled CIFAR-10 images, proxies {', '.join(proxies)}")
  t0 = time.perf_counter()
  results = {}
  for p in proxies:
    t1 = time.perf_counter()
    results.update(engine.score(space, archs, [p], batch, seed=args.seed))
    print(f"  {p:<14} {time.perf_counter() - t1:7.1f} s")
  idx = space.to_index(archs)
  scores = {p: (idx, v) for p, v in results.items()}
  print(f"scored in {time.perf_counter() - t0:.1f} s\n")
  print(_io.format_table(_io.correlation_table(scores, ["cifar10_test200", "cifar100_test200"])))
  if args.out:
    per_arch = {p: v for p, v in results.items() if not is_pooled(p)}  # files hold components
    _io.write_csv_atomic(args.out, _io.CSV_COLUMNS, list(score_rows(space, archs, per_arch)))
    print(f"scores -> {args.out}")
  return 0
