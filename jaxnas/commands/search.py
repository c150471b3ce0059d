"""``jaxnas search``: run a training-free search method; prints the architecture, writes JSON.

Example::

  jaxnas search --space nb201 --method freedarts --seed 0 --out result.json
  jaxnas search --space nb201 --method random --proxy epsilon --set n=100
  jaxnas search --space darts --method nasi --set steps=10 --set 'supernet={"C": 8, "L": 5}'

``--set KEY=VALUE`` (repeatable) overrides a method option; values are read as JSON when they parse
(numbers, true/false, objects), else as strings. ``jaxnas search --method NAME --options`` lists a
method's options and defaults.
"""

import json

import numpy as np

from jaxnas.commands import _io
from jaxnas.errors import JaxnasInputError

#: Method options that configure the space's module (checked like ``jaxnas score --config``).
MODULE_OPTIONS = ("config", "supernet", "ntk_supernet", "region_supernet")

NAME = "search"
HELP = "run a search method (see `jaxnas list`: nasi, freedarts, hnas, cascade, ...); JSON result"


def add_arguments(s):
  """Adds the ``jaxnas search`` options to the subparser ``s``."""
  s.add_argument("--space", default="nb201", help="a search space (`jaxnas list`: nb201, darts, "
                 "nb101); the method must support it")
  s.add_argument("--method", required=True, help="search method; see `jaxnas list`")
  s.add_argument("--seed", type=int, default=0)
  s.add_argument("--proxy", default=None, help="proxy guiding random / rea (e.g. epsilon); cascade takes --set stages=...")
  s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="method option (repeatable), e.g. --set steps=10")
  s.add_argument("--out", default=None, help="write the result JSON here")
  s.add_argument("--overwrite", action="store_true", help="replace an existing --out")
  s.add_argument("--options", action="store_true", help="print the method's options and exit")


def parse_sets(items) -> dict:
  """``['k=v', ...]`` -> ``{k: v}`` with JSON-decoded values where possible."""
  out = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
      raise JaxnasInputError(f"--set expects KEY=VALUE, got {item!r}")
    try:
      out[key.strip()] = json.loads(value)
    except json.JSONDecodeError:
      out[key.strip()] = value
  return out


def check_options(space, options: dict, defaults: dict) -> dict:
  """The shared options of ``options`` (resolved) checked before any work: dataset, module
  configurations, positive sizes (``batch_size`` 0 where that is the method's default, meaning
  each proxy's own), scoring mode. Returns ``options`` with converted values."""
  from jaxnas import data
  from jaxnas.engine import scoring
  out = dict(options)
  if "dataset" in out:
    data.num_classes(out["dataset"])
  for k in MODULE_OPTIONS:
    if isinstance(out.get(k), dict):
      known = _io.config_options(space) or {}
      mine = {n: v for n, v in out[k].items() if n in known}
      out[k] = {**out[k], **_io.check_config(space, mine, f"--set {k}")}
  for k in ("resolution", "chunk_size", "steps", "n", "queries", "pool", "population",
            "sample_size", "repeats", "ntk_batch", "ntk_chunk", "region_samples"):
    if k in out:   # 0 allowed where it is the method's default (cascade: n=0 whole space)
      _io.check_positive(out[k], f"--set {k}", zero=defaults.get(k) == 0)
  if "batch_size" in out:
    _io.check_positive(out["batch_size"], "--set batch_size", zero=defaults.get("batch_size") == 0)
  if "stages" in out:
    from jaxnas.search.cascade import parse_stages
    parse_stages(out["stages"])
  if "mode" in out and out["mode"] not in scoring.MODES:
    raise JaxnasInputError(f"unknown --set mode {out['mode']!r}; allowed: "
                           f"{', '.join(scoring.MODES)}")
  return out


def run(args) -> int:
  """Runs ``jaxnas search`` (or lists a method's options); returns the exit code."""
  from jaxnas import search
  from jaxnas.spaces import get_space
  method = search.get_method(args.method)
  if args.options:
    for k, v in method.defaults:
      print(f"{k:<16} {json.dumps(v)}")
    return 0
  space = get_space(args.space)
  search.check_supported(method, space)
  options = parse_sets(args.set)
  if args.proxy is not None:
    if "proxy" not in dict(method.defaults):
      raise JaxnasInputError(f"--proxy applies to random and rea, not to {method.name!r}")
    from jaxnas.proxies import expand
    expand([args.proxy])  # a proxy or a pool-relative score; unknown names raise
    options["proxy"] = args.proxy
  resolved = search.resolve_options(method, options)       # reject bad options before any work
  checked = check_options(space, {k: resolved[k] for k in options}, dict(method.defaults))
  options.update(checked)
  _io.check_seed(args.seed)
  _io.check_new_output(args.out, args.overwrite)
  res = search.search(method.name, space, seed=args.seed, **options)
  if args.out:
    search.write_json(res, args.out)
  print(f"{method.name} on {space.name} (seed {args.seed}): {res.seconds:.1f} s")
  for k, v in space.describe_arch(res.arch).items():
    print(f"  {k:<8} {json.dumps(v) if isinstance(v, (dict, list)) else v}")
  if space.accuracy is not None:
    acc = {m: float(space.accuracy(res.arch[None], m)[0]) for m in space.metrics[:2]}
    print("  benchmark accuracy (not seen by the search): " + ", ".join(
        f"{m} {v:.2f}" if np.isfinite(v) else f"{m} (not in the benchmark)"
        for m, v in acc.items()))
  if args.out:
    print(f"result -> {args.out}")
  return 0
