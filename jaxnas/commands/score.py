"""``jaxnas score``: score architectures with proxies; writes a long-format CSV."""

import os
import time

import numpy as np

from jaxnas.commands import _io
from jaxnas.errors import JaxnasInputError

NAME = "score"
HELP = "score architectures with proxies; writes a long CSV (index,arch_str,proxy,score)"


def add_arguments(s):
  s.add_argument("--space", default="nb201")
  s.add_argument("--proxies", default="params,flops", help="comma-separated proxy names")
  s.add_argument("--archs", default=None, help="'all', or comma-separated indices/arch strings")
  s.add_argument("--archs-file", default=None, help="file with one index or arch string per line")
  s.add_argument("--sample", type=int, default=None, help="score N architectures drawn with --seed")
  s.add_argument("--seed", type=int, default=0)
  s.add_argument("--dataset", default="cifar10-bundled")
  s.add_argument("--data-dir", default=None, help="tensorflow-datasets directory")
  s.add_argument("--batch-size", type=int, default=64)
  s.add_argument("--out", default=None, help="CSV path (columns index,arch_str,proxy,score)")


def score_rows(space, archs, results):
  idx = space.to_index(archs) if space.to_index is not None else np.arange(len(archs))
  strs = [space.decode(a) for a in archs]
  for name, vals in results.items():
    for i, s, v in zip(np.atleast_1d(idx), strs, vals):
      yield (int(i), s, name, repr(float(v)))


def run(args) -> int:
  from jaxnas import data, engine
  from jaxnas.proxies import get_proxy
  from jaxnas.spaces import get_space
  space = get_space(args.space)
  proxies = _io.split(args.proxies)
  if not proxies:
    raise JaxnasInputError("--proxies is empty; see `jaxnas list`")
  for p in proxies:
    get_proxy(p)
  data.num_classes(args.dataset)
  archs = _io.select_archs(space, args.archs, args.archs_file, args.sample, args.seed)
  if args.out:
    d = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(d):
      raise JaxnasInputError(f"output directory {d!r} does not exist")
  batch = data.minibatch(args.dataset, args.batch_size, seed=args.seed, data_dir=args.data_dir)
  config = {"num_classes": data.num_classes(args.dataset)}
  t0 = time.perf_counter()
  results = engine.score(space, archs, proxies, batch, seed=args.seed, config=config)
  dt = time.perf_counter() - t0
  if args.out:
    _io.write_csv_atomic(args.out, _io.CSV_COLUMNS, list(score_rows(space, archs, results)))
  print(f"scored {len(archs)} architectures x {len(proxies)} proxies in {dt:.1f} s"
        + (f" -> {args.out}" if args.out else ""))
  for name, vals in results.items():
    fin = np.isfinite(vals)
    print(f"  {name:<14} min {np.nanmin(vals):.6g}  median {np.nanmedian(vals):.6g}  "
          f"max {np.nanmax(vals):.6g}  non-finite {int((~fin).sum())}")
  return 0
