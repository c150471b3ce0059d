"""Shared pieces of the command line: architecture selection, atomic CSV files, correlation tables."""

from __future__ import annotations

import csv
import io
import os
import re
from typing import Optional

import numpy as np

from jaxnas._files import atomic
from jaxnas.errors import JaxnasInputError

CSV_COLUMNS = ("index", "arch_str", "proxy", "score")
#: Seeds are 32-bit: ``jax.random.key`` folds larger ones onto smaller ones (2**32 is seed 0).
MAX_SEED = 2**32 - 1
#: Module fields that are not ``--config`` options: jaxnas sets them itself.
INTERNAL_FIELDS = ("parent", "name", "num_classes", "fixed_arch", "gates", "relu_probe")


def split(text: str) -> list[str]:
  """Comma-separated ``text`` -> its stripped, non-empty items (``'a, ,b'`` -> ``['a', 'b']``)."""
  return [t.strip() for t in text.split(",") if t.strip()]


def check_seed(seed, option: str = "--seed") -> int:
  """``seed`` if it is an integer in ``0..MAX_SEED``; else a :class:`JaxnasInputError`."""
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
    raise JaxnasInputError(f"{option} must be an integer from 0 to {MAX_SEED}, got {seed!r}")
  return int(seed)


def check_positive(value, option: str, zero: bool = False):
  """``value`` if it is a positive integer (or 0 with ``zero``) or None; else raises."""
  lo = 0 if zero else 1
  if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                            or value < lo):
    what = "a non-negative" if zero else "a positive"
    raise JaxnasInputError(f"{option} must be {what} integer, got {value!r}")
  return value


def check_output_path(path: str, option: str = "--out") -> str:
  """``path`` if it can be written: its directory exists and is writable, it is no directory."""
  d = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(d):
    raise JaxnasInputError(f"output directory {d!r} does not exist")
  if not os.access(d, os.W_OK | os.X_OK):
    raise JaxnasInputError(f"output directory {d!r} is not writable")
  if os.path.isdir(path):
    raise JaxnasInputError(f"{option} {path!r} is a directory; give a file path")
  return path


def check_new_output(path: Optional[str], overwrite: bool, option: str = "--out"):
  """``path`` checked writable and, unless ``overwrite``, not an existing file (before any work)."""
  if path is None:
    if overwrite:
      raise JaxnasInputError(f"--overwrite needs {option}")
    return None
  check_output_path(path, option)
  if os.path.exists(path) and not overwrite:
    raise JaxnasInputError(f"{option} {path!r} exists; give --overwrite to replace it (or "
                           f"another path)")
  return path


def _is_optional_str(field) -> bool:
  t = field.type if isinstance(field.type, str) else str(field.type)
  return re.fullmatch(r"(typing\.)?Optional\[str\]|str \| None|None \| str", t.strip()) is not None


def config_options(space) -> dict:
  """The ``--config`` options of ``space``'s module: ``{name: (type, allowed values or None)}``.

  The type is the default's (int, float, bool or str; ``Optional[str]`` fields are str). Fields
  jaxnas sets itself (:data:`INTERNAL_FIELDS`) and fields of other types are not options. None
  when the module cannot be built without arguments (a plugin space): its options are unknown.
  """
  from jaxnas.spaces import ops
  from jaxnas.spaces.darts.topology import CONV_IMPLS
  choices = {"bn": ops.BN_MODES, "reduction_bn": ops.BN_MODES, "weight_init": ops.INITS,
             "conv_impl": CONV_IMPLS}
  try:
    model = space.model()
  except TypeError:
    return None
  out = {}
  for name, field in getattr(model, "__dataclass_fields__", {}).items():
    if name in INTERNAL_FIELDS:
      continue
    default = getattr(model, name)
    kind = type(default) if isinstance(default, (bool, int, float, str)) else (
        str if default is None and _is_optional_str(field) else None)
    if kind is not None:
      out[name] = (kind, choices.get(name))
  return out


def check_config(space, config: dict, option: str = "--config") -> dict:
  """``config`` (module options, strings or JSON values) checked and converted to their types.

  Raises :class:`JaxnasInputError` naming the key or value and what is allowed: positive integers
  for integer options, ``true``/``false`` for flags, the listed values for ``bn`` and the like.
  """
  opts = config_options(space)
  if opts is None:   # unknown options: numbers and true/false converted, the module checks the rest
    return {k: _guess(v) for k, v in config.items()}
  out = {}
  for k, v in config.items():
    if k == "num_classes":
      raise JaxnasInputError(f"{option} key 'num_classes' is not an option: the dataset sets it")
    if k not in opts:
      raise JaxnasInputError(f"unknown {option} key {k!r}; allowed: {', '.join(opts)}")
    kind, allowed = opts[k]
    want = (f"one of: {', '.join(allowed)}" if allowed else
            {int: "a positive integer", float: "a finite number", bool: "true or false",
             str: "a non-empty string"}[kind])
    bad = JaxnasInputError(f"{option} {k}={v!r} must be {want}")
    if kind is bool:
      if isinstance(v, bool):
        out[k] = v
      elif isinstance(v, str) and v.strip().lower() in ("true", "false"):
        out[k] = v.strip().lower() == "true"
      else:
        raise bad
    elif kind is int:
      if isinstance(v, bool):
        raise bad
      try:
        n = int(v.strip()) if isinstance(v, str) else v
      except ValueError:
        raise bad from None
      if not isinstance(n, (int, np.integer)) or n < 1:
        raise bad
      out[k] = int(n)
    elif kind is float:
      try:
        x = float(v) if not isinstance(v, bool) else float("nan")
      except (TypeError, ValueError):
        raise bad from None
      if not np.isfinite(x):
        raise bad
      out[k] = x
    else:
      if not isinstance(v, str) or not v.strip() or (allowed and v.strip() not in allowed):
        raise bad
      out[k] = v.strip()
  return out


def _guess(v):
  if not isinstance(v, str):
    return v
  for conv in (int, float):
    try:
      return conv(v)
    except ValueError:
      pass
  return {"true": True, "false": False}.get(v.lower(), v)


#: Columns of a CSV archs file, in order of preference: the shared benchmark files' ``genotype``
#: (DARTS) and ``matrix`` + ``ops`` (NB101), or jaxnas' own ``arch_str`` / ``index``.
CSV_ARCH_COLUMNS = (("genotype",), ("matrix", "ops"), ("arch_str",), ("index",))


def _csv_archs(path: str, text: str):
  """Tokens of a CSV archs file (one per data row, in file order), or None if ``text`` has no
  header naming one of :data:`CSV_ARCH_COLUMNS`."""
  first = text.lstrip("\ufeff").split("\n", 1)[0]
  try:
    head = next(csv.reader([first]))
  except (csv.Error, StopIteration):
    return None
  for cols in CSV_ARCH_COLUMNS:
    if all(c in head for c in cols):
      try:
        rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline="")))
      except csv.Error as e:
        raise JaxnasInputError(f"archs file {path!r} is not a valid CSV file ({e})") from None
      toks = []
      for n, r in enumerate(rows, 2):
        vals = [r.get(c) for c in cols]
        if any(v is None or not v.strip() for v in vals):
          raise JaxnasInputError(f"archs file {path!r} line {n}: empty {'/'.join(cols)}")
        toks.append(vals[0].strip() if len(cols) == 1 else tuple(v.strip() for v in vals))
      if not toks:
        raise JaxnasInputError(f"archs file {path!r} holds no architectures")
      return toks
  return None


def read_archs_file(path: str) -> list:
  """Architecture tokens of a file: one per line (blank lines and ``#`` comments ignored), or a
  CSV whose header has a column of :data:`CSV_ARCH_COLUMNS` (e.g. the shared benchmark files:
  ``genotype`` for DARTS, ``matrix`` and ``ops`` for NB101), one architecture per data row."""
  if not os.path.isfile(path):
    raise JaxnasInputError(f"archs file {path!r} does not exist")
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except UnicodeDecodeError:
    raise JaxnasInputError(f"archs file {path!r} is not UTF-8 text") from None
  from_csv = _csv_archs(path, text)
  if from_csv is not None:
    return from_csv
  lines = text.splitlines()
  toks = [ln.split("#", 1)[0].strip() for ln in lines]
  toks = [t for t in toks if t]
  if not toks:
    raise JaxnasInputError(f"archs file {path!r} holds no architectures")
  return toks


def select_archs(space, archs: Optional[str], archs_file: Optional[str], sample: Optional[int],
                 seed: int) -> np.ndarray:
  """The architectures named on the command line, as ``(n, *arch_shape)`` op indices.

  Each architecture may be named once: a list naming one twice (by index or string) is an error.
  """
  import jax
  check_seed(seed)
  chosen = [x is not None for x in (archs, archs_file, sample)]
  if sum(chosen) > 1:
    raise JaxnasInputError("give only one of --archs, --archs-file, --sample")
  if sample is not None:
    if isinstance(sample, bool) or sample < 1:
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
    tokens, where = read_archs_file(archs_file), f"archs file {archs_file!r}"
  elif archs is None or archs == "all":
    if space.num_archs is None:
      raise JaxnasInputError(f"space {space.name!r} cannot be enumerated; use --sample N")
    return space.from_index(np.arange(space.num_archs))
  else:
    tokens, where = split(archs), "--archs"
    if not tokens:
      raise JaxnasInputError("--archs is empty; give 'all', indices or arch strings")
  for t in tokens:
    if isinstance(t, str) and re.fullmatch(r"-\d+", t) and space.num_archs is not None:
      raise JaxnasInputError(f"{where}: index {t} out of range; allowed: 0..{space.num_archs - 1}")
  out = np.stack([space.encode(t) for t in tokens])
  if space.to_index is not None:
    idx = np.atleast_1d(np.asarray(space.to_index(out)))
    first: dict = {}
    for t, i in zip(tokens, idx.tolist()):
      if i in first:
        same = "" if first[i] == t else f" ({first[i]!r} and {t!r})"
        raise JaxnasInputError(f"{where} names architecture {i} twice{same}; give each once")
      first[i] = t
  return out


def write_csv_atomic(path: str, header, rows) -> None:
  """Writes a CSV through a temporary file in the same directory, then renames it into place."""
  d = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(d):
    raise JaxnasInputError(f"output directory {d!r} does not exist")
  with atomic(path, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(header)
    w.writerows(rows)


def read_scores(path: str, arch_strs: Optional[dict] = None):
  """Reads a long-format scores CSV -> {proxy: (indices, scores)}.

  A file with a jaxnas sidecar (``PATH.meta.json``) is verified against it first and only its
  committed rows are read; a (proxy, index) given twice is an error. With a dict ``arch_strs``,
  fills it with ``{index: arch_str}`` (truths of spaces without a global index need them).
  """
  if not os.path.isfile(path):
    raise JaxnasInputError(f"scores file {path!r} does not exist")
  from jaxnas.engine import store
  if os.path.exists(store.meta_path(path)):
    try:
      meta = store.verify(path)
    except store.OutputError as e:
      raise JaxnasInputError(f"{e} (to read it as a plain CSV, move its sidecar "
                             f"{store.meta_path(path)!r} away)") from None
    with open(path, "rb") as f:
      raw = f.read(meta["state"]["bytes"])
  else:
    with open(path, "rb") as f:
      raw = f.read()
  try:
    text = raw.decode("utf-8-sig")
  except UnicodeDecodeError:
    raise JaxnasInputError(f"scores file {path!r} is not UTF-8 text") from None
  out: dict = {}
  seen: set = set()
  try:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in ("index", "proxy", "score") if c not in (reader.fieldnames or [])]
    if missing:
      raise JaxnasInputError(
          f"scores file {path!r} lacks column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}")
    for row in reader:
      n = reader.line_num
      try:
        i, s = int(row["index"]), float(row["score"])
      except (TypeError, ValueError):
        raise JaxnasInputError(
            f"scores file {path!r} line {n}: index {row.get('index')!r} / score "
            f"{row.get('score')!r} is not a number") from None
      if row["proxy"] is None:
        raise JaxnasInputError(f"scores file {path!r} line {n} lacks the proxy column")
      if (row["proxy"], i) in seen:
        raise JaxnasInputError(f"scores file {path!r} line {n}: a second row for proxy "
                               f"{row['proxy']!r}, index {i}; give each (proxy, index) once")
      seen.add((row["proxy"], i))
      if arch_strs is not None:
        arch_strs[i] = row.get("arch_str")
      out.setdefault(row["proxy"], ([], []))
      out[row["proxy"]][0].append(i)
      out[row["proxy"]][1].append(s)
  except csv.Error as e:
    raise JaxnasInputError(f"scores file {path!r} is not a valid CSV file ({e})") from None
  if not out:
    raise JaxnasInputError(f"scores file {path!r} holds no rows")
  return {p: (np.asarray(i), np.asarray(s)) for p, (i, s) in out.items()}


def correlation_table(scores: dict, truths, arch_strs: Optional[dict] = None,
                      interval: bool = False) -> list[dict]:
  """Rank metrics of each proxy against each truth metric (NB201 by index; other benchmarks by
  the ``arch_strs`` of the indices, :func:`jaxnas.benchmarks.truth`); with ``interval`` also
  ``spearman_lo``/``spearman_hi``, the 95 % bootstrap interval (:func:`benchmarks.spearman_interval`)."""
  from jaxnas import benchmarks
  rows = []
  for proxy, (idx, s) in sorted(scores.items()):
    for truth in truths:
      strs = None if arch_strs is None else [arch_strs[int(i)] for i in idx]
      t = benchmarks.truth(truth, idx, strs)
      rows.append({"proxy": proxy, "truth": truth, **benchmarks.rank_report(s, t)})
      if interval:
        iv = benchmarks.spearman_interval(s, t)
        rows[-1].update(spearman_lo=iv["lo"], spearman_hi=iv["hi"])
  return rows


def format_table(rows) -> str:
  """Rows of :func:`correlation_table` as a fixed-width text table (header, rule, one line each)."""
  ci = bool(rows) and "spearman_lo" in rows[0]
  head = (f"{'proxy':<16} {'truth':<18} {'spearman':>9} " + (f"{'95% CI':>15} " if ci else "")
          + f"{'kendall':>8} {'top10%':>7} {'n':>6} {'nonfinite':>9}")
  lines = [head, "-" * len(head)]
  for r in rows:
    iv = f"{r['spearman_lo']:>6.3f} .. {r['spearman_hi']:>5.3f} " if ci else ""
    lines.append(f"{r['proxy']:<16} {r['truth']:<18} {r['spearman']:>9.3f} {iv}"
                 f"{r['kendall']:>8.3f} {r['top10_overlap']:>7.3f} {r['n']:>6d} "
                 f"{r['n_nonfinite_scores']:>9d}")
  return "\n".join(lines)


def scatter_plot(scores: dict, truth: str, path: str, arch_strs: Optional[dict] = None) -> None:
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
    acc = benchmarks.truth(truth, idx, None if arch_strs is None
                           else [arch_strs[int(i)] for i in idx])
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


