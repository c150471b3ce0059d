"""Shared pieces of the command line: architecture selection, atomic CSV files, correlation tables."""

from __future__ import annotations

import csv
import os
from typing import Optional

import numpy as np

from jaxnas.errors import JaxnasInputError

CSV_COLUMNS = ("index", "arch_str", "proxy", "score")


def split(text: str) -> list[str]:
  """Comma-separated ``text`` -> its stripped, non-empty items (``'a, ,b'`` -> ``['a', 'b']``)."""
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
    tokens = split(archs)
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
  """Rows of :func:`correlation_table` as a fixed-width text table (header, rule, one line each)."""
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


