"""The ``jaxnas`` command: parses arguments, calls the library, formats the result.

Every bad input exits with status 2 and one line on stderr naming the bad value and what is
allowed; output files are written atomically (a temporary file renamed into place), so a failed
run never leaves a file that looks complete.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from typing import Optional

import numpy as np

from jaxnas.errors import JaxnasInputError

CSV_COLUMNS = ("index", "arch_str", "proxy", "score")


class _Parser(argparse.ArgumentParser):
  """argparse with one-line errors and exit status 2."""

  def error(self, message):
    raise JaxnasInputError(f"{self.prog}: {message}")


# ------------------------------------------------------------------ helpers


def _split(text: str) -> list[str]:
  return [t.strip() for t in text.split(",") if t.strip()]


def read_archs_file(path: str) -> list[str]:
  """Architecture tokens of a file: one per line; blank lines and ``#`` comments ignored."""
  if not os.path.isfile(path):
    raise JaxnasInputError(f"archs file {path!r} does not exist")
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
  except UnicodeDecodeError:
    raise JaxnasInputError(f"archs file {path!r} is not UTF-8 text") from None
  toks = [ln.split("#", 1)[0].strip() for ln in lines]
  toks = [t for t in toks if t]
  if not toks:
    raise JaxnasInputError(f"archs file {path!r} holds no architectures")
  return toks


def select_archs(space, archs: Optional[str], archs_file: Optional[str], sample: Optional[int],
                 seed: int) -> np.ndarray:
  """The architectures named on the command line, as ``(n, *arch_shape)`` op indices."""
  import jax
  chosen = [x is not None for x in (archs, archs_file, sample)]
  if sum(chosen) > 1:
    raise JaxnasInputError("give only one of --archs, --archs-file, --sample")
  if sample is not None:
    if sample < 1:
      raise JaxnasInputError(f"--sample must be a positive integer, got {sample}")
    key = jax.random.key(seed)
    if space.num_archs is not None:
      if sample > space.num_archs:
        raise JaxnasInputError(
            f"--sample {sample} exceeds the {space.num_archs} architectures of {space.name}")
      idx = np.sort(np.asarray(jax.random.choice(key, space.num_archs, (sample,), replace=False)))
      return space.from_index(idx)
    return np.asarray(space.sample(key, sample))
  if archs_file is not None:
    tokens = read_archs_file(archs_file)
  elif archs is None or archs == "all":
    if space.num_archs is None:
      raise JaxnasInputError(f"space {space.name!r} cannot be enumerated; use --sample N")
    return space.from_index(np.arange(space.num_archs))
  else:
    tokens = _split(archs)
    if not tokens:
      raise JaxnasInputError("--archs is empty; give 'all', indices or arch strings")
  return np.stack([space.encode(t) for t in tokens])


def write_csv_atomic(path: str, header, rows) -> None:
  """Writes a CSV through a temporary file in the same directory, then renames it into place."""
  d = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(d):
    raise JaxnasInputError(f"output directory {d!r} does not exist")
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    with open(tmp, "w", newline="", encoding="utf-8") as f:
      w = csv.writer(f)
      w.writerow(header)
      w.writerows(rows)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def read_scores(path: str):
  """Reads a long-format scores CSV -> {proxy: (indices, scores)}."""
  if not os.path.isfile(path):
    raise JaxnasInputError(f"scores file {path!r} does not exist")
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    missing = [c for c in ("index", "proxy", "score") if c not in (reader.fieldnames or [])]
    if missing:
      raise JaxnasInputError(
          f"scores file {path!r} lacks column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}")
    out: dict = {}
    for n, row in enumerate(reader, start=2):
      try:
        i, s = int(row["index"]), float(row["score"])
      except (TypeError, ValueError):
        raise JaxnasInputError(
            f"scores file {path!r} line {n}: index {row.get('index')!r} / score "
            f"{row.get('score')!r} is not a number") from None
      out.setdefault(row["proxy"], ([], []))
      out[row["proxy"]][0].append(i)
      out[row["proxy"]][1].append(s)
  if not out:
    raise JaxnasInputError(f"scores file {path!r} holds no rows")
  return {p: (np.asarray(i), np.asarray(s)) for p, (i, s) in out.items()}


def correlation_table(scores: dict, truths) -> list[dict]:
  """Rank metrics of each proxy against each truth metric (NB201 indices)."""
  from jaxnas import benchmarks
  rows = []
  for proxy, (idx, s) in sorted(scores.items()):
    for truth in truths:
      rep = benchmarks.rank_report(s, benchmarks.accuracy(idx, truth))
      rows.append({"proxy": proxy, "truth": truth, **rep})
  return rows


def format_table(rows) -> str:
  head = f"{'proxy':<16} {'truth':<18} {'spearman':>9} {'kendall':>8} {'top10%':>7} {'n':>6} {'nonfinite':>9}"
  lines = [head, "-" * len(head)]
  for r in rows:
    lines.append(f"{r['proxy']:<16} {r['truth']:<18} {r['spearman']:>9.3f} {r['kendall']:>8.3f} "
                 f"{r['top10_overlap']:>7.3f} {r['n']:>6d} {r['n_nonfinite_scores']:>9d}")
  return "\n".join(lines)


def scatter_plot(scores: dict, truth: str, path: str) -> None:
  """One panel per proxy: score rank vs benchmark accuracy."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from jaxnas import benchmarks
  names = sorted(scores)
  cols = min(4, len(names))
  rows = (len(names) + cols - 1) // cols
  fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
  for ax, name in zip(axes.ravel(), names):
    idx, s = scores[name]
    acc = benchmarks.accuracy(idx, truth)
    ok = np.isfinite(s) & np.isfinite(acc)
    rho = benchmarks.spearman(s, acc)
    ax.scatter(np.argsort(np.argsort(s[ok])), acc[ok], s=2, alpha=0.4)
    ax.set_title(f"{name}  rho={rho:.3f}", fontsize=9)
    ax.set_xlabel("score rank", fontsize=8)
    ax.set_ylabel(truth, fontsize=8)
  for ax in axes.ravel()[len(names):]:
    ax.axis("off")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


# ------------------------------------------------------------------ commands


def cmd_list(args) -> int:
  from jaxnas import data
  from jaxnas.proxies import get_proxy, list_proxies
  from jaxnas.spaces import get_space, list_spaces
  print("spaces:")
  for s in list_spaces():
    sp = get_space(s)
    n = f"{sp.num_archs} architectures" if sp.num_archs else "not enumerable"
    print(f"  {s:<16} {n}")
  print("proxies:")
  for p in list_proxies():
    print(f"  {p:<16} {get_proxy(p).doc}")
  try:
    from jaxnas.search import list_methods, get_method
    print("search methods:")
    for m in list_methods():
      print(f"  {m:<16} {get_method(m).doc}")
  except ImportError:
    pass
  print("datasets:")
  for d in data.DATASETS:
    print(f"  {d}")
  return 0


def _score_rows(space, archs, results):
  idx = space.to_index(archs) if space.to_index is not None else np.arange(len(archs))
  strs = [space.decode(a) for a in archs]
  for name, vals in results.items():
    for i, s, v in zip(np.atleast_1d(idx), strs, vals):
      yield (int(i), s, name, repr(float(v)))


def cmd_score(args) -> int:
  from jaxnas import data, engine
  from jaxnas.proxies import get_proxy
  from jaxnas.spaces import get_space
  space = get_space(args.space)
  proxies = _split(args.proxies)
  if not proxies:
    raise JaxnasInputError("--proxies is empty; see `jaxnas list`")
  for p in proxies:
    get_proxy(p)
  data.num_classes(args.dataset)
  archs = select_archs(space, args.archs, args.archs_file, args.sample, args.seed)
  if args.out:
    d = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(d):
      raise JaxnasInputError(f"output directory {d!r} does not exist")
  batch = data.minibatch(args.dataset, args.batch_size, seed=args.seed, data_dir=args.data_dir)
  config = {"num_classes": data.num_classes(args.dataset)}
  t0 = time.perf_counter()
  results = engine.score(space, archs, proxies, batch, seed=args.seed, config=config)
  dt = time.perf_counter() - t0
  rows = list(_score_rows(space, archs, results))
  if args.out:
    write_csv_atomic(args.out, CSV_COLUMNS, rows)
  print(f"scored {len(archs)} architectures x {len(proxies)} proxies in {dt:.1f} s"
        + (f" -> {args.out}" if args.out else ""))
  for name, vals in results.items():
    fin = np.isfinite(vals)
    print(f"  {name:<14} min {np.nanmin(vals):.6g}  median {np.nanmedian(vals):.6g}  "
          f"max {np.nanmax(vals):.6g}  non-finite {int((~fin).sum())}")
  return 0


def cmd_correlate(args) -> int:
  from jaxnas import benchmarks
  truths = _split(args.truth)
  for t in truths:
    if t not in benchmarks.METRICS:
      raise JaxnasInputError(f"unknown truth metric {t!r}; allowed: {', '.join(benchmarks.METRICS)}")
  scores = read_scores(args.scores)
  print(format_table(correlation_table(scores, truths)))
  if args.plot:
    scatter_plot(scores, truths[0], args.plot)
    print(f"plot -> {args.plot}")
  return 0


def cmd_quickstart(args) -> int:
  """Scores a sample of NB201 architectures on the bundled CIFAR-10 images and correlates."""
  from jaxnas import data, engine
  from jaxnas.proxies import list_proxies
  from jaxnas.spaces import get_space
  space = get_space("nb201")
  proxies = _split(args.proxies)
  archs = select_archs(space, None, None, args.sample, args.seed)
  batch = data.minibatch("cifar10-bundled", args.batch_size, seed=args.seed)
  print(f"jaxnas quickstart: {len(archs)} NB201 architectures (seed {args.seed}), "
        f"{len(batch.x)} bundled CIFAR-10 images, proxies {', '.join(proxies)}")
  t0 = time.perf_counter()
  results = {}
  for p in proxies:
    t1 = time.perf_counter()
    results.update(engine.score(space, archs, [p], batch, seed=args.seed))
    print(f"  {p:<12} {time.perf_counter() - t1:6.1f} s")
  idx = space.to_index(archs)
  scores = {p: (idx, v) for p, v in results.items()}
  print(f"scored in {time.perf_counter() - t0:.1f} s\n")
  print(format_table(correlation_table(scores, ["cifar10_test200", "cifar100_test200"])))
  if args.out:
    write_csv_atomic(args.out, CSV_COLUMNS, list(_score_rows(space, archs, results)))
    print(f"scores -> {args.out}")
  return 0


def build_parser() -> argparse.ArgumentParser:
  from jaxnas import __version__
  p = _Parser(prog="jaxnas", description="Training-free neural architecture search in JAX.")
  p.add_argument("--version", action="version", version=f"jaxnas {__version__}")
  sub = p.add_subparsers(dest="command", parser_class=_Parser)

  s = sub.add_parser("list", help="available spaces, proxies, search methods, datasets")
  s.set_defaults(func=cmd_list)

  s = sub.add_parser("score", help="score architectures with proxies; writes a long CSV")
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
  s.set_defaults(func=cmd_score)

  s = sub.add_parser("correlate", help="rank correlation of a scores CSV with benchmark accuracy")
  s.add_argument("--scores", required=True)
  s.add_argument("--truth", default="cifar10_test200", help="comma-separated benchmark metrics")
  s.add_argument("--plot", default=None, help="save scatter plots (PNG)")
  s.set_defaults(func=cmd_correlate)

  s = sub.add_parser("quickstart", help="the main job: score a sample of NB201 and correlate")
  s.add_argument("--sample", type=int, default=200)
  s.add_argument("--proxies", default="params,flops")
  s.add_argument("--seed", type=int, default=0)
  s.add_argument("--batch-size", type=int, default=64)
  s.add_argument("--out", default=None)
  s.set_defaults(func=cmd_quickstart)
  return p


def main(argv=None) -> int:
  parser = build_parser()
  try:
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
      parser.print_help()
      return 2
    return int(args.func(args) or 0)
  except JaxnasInputError as e:
    msg = str(e).replace("\n", " ")
    print(f"jaxnas: error: {msg}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("jaxnas: interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":
  sys.exit(main())
