"""The result of a search and its JSON form.

JSON schema (``to_json``): ``method``, ``space``, ``seed``, ``arch`` (op indices), ``seconds``
(wall time of the search, compilation included), ``queries`` (how many benchmark accuracies the
search looked at: 0 for a training-free method), ``config`` (every option), ``trace`` (a list of
per-step records), ``extra``; plus the fields the space describes its architectures by
(``SearchSpace.describe``), e.g.:

* NB201: ``arch_str`` (the benchmark string), ``index`` (benchmark index), ``params_M`` of the
  benchmark network (C=16, N=5).
* DARTS: ``genotype`` (``{"normal": [[op, input], ...8], "normal_concat": [...], "reduce": [...],
  "reduce_concat": [...]}``) and ``params_M`` of the evaluation network (C=36, 20 cells).
* NB101: ``arch_str`` (``matrix|ops``), ``hash`` (the NB101 graph hash), ``params_M``.

Non-finite floats (a proxy's NaN in a trace) are written as ``null``: JSON has no NaN.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, NamedTuple, Optional

import numpy as np

from jaxnas._files import atomic
from jaxnas.errors import JaxnasInputError


class SearchResult(NamedTuple):
  """What a search method returns.

  Attributes:
    method: registry name of the method.
    space: name of the search space.
    arch: the chosen architecture, op indices of shape ``space.arch_shape``.
    seconds: wall time of the search (compilation included).
    trace: per-step records (dicts of JSON-able values), in search order.
    config: the resolved options.
    seed: the seed the key came from (set by :func:`jaxnas.search.search`), or None.
    extra: method-specific results (e.g. final operation scores).
    queries: how many benchmark accuracies (or trainings) the search used; 0 if training-free.
  """
  method: str
  space: str
  arch: np.ndarray
  seconds: float
  trace: list
  config: dict
  seed: Optional[int] = None
  extra: dict = {}
  queries: int = 0

  @property
  def arch_str(self) -> str:
    """The architecture in the space's canonical string form."""
    from jaxnas.spaces import get_space
    return _as_str(get_space(self.space).decode(self.arch))


def finish(method: str, space, arch, t0: float, trace, config, queries: int = 0,
           **extra) -> SearchResult:
  """Builds a :class:`SearchResult` with ``seconds = perf_counter() - t0``; ``queries``: the
  benchmark accuracies the search looked at (0: training-free)."""
  arch = np.asarray(arch, np.int32)
  return SearchResult(method, space.name, arch, time.perf_counter() - t0, list(trace),
                      dict(config), None, extra, int(queries))


def _as_str(decoded) -> str:
  return decoded if isinstance(decoded, str) else json.dumps(decoded)


def _jsonable(x: Any):
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, np.ndarray) or hasattr(x, "__array__") and not isinstance(x, (str, bytes)):
    return _jsonable(np.asarray(x).tolist())
  if isinstance(x, (bool, np.bool_)):
    return bool(x)
  if isinstance(x, (int, np.integer)):
    return int(x)
  if isinstance(x, (float, np.floating)):
    x = float(x)
    return x if math.isfinite(x) else None
  return x


def to_json(result: SearchResult) -> dict:
  """The JSON-able dict of a result (see the module docstring for the schema)."""
  from jaxnas.spaces import get_space
  space = get_space(result.space)
  out = {"method": result.method, "space": result.space, "seed": result.seed,
         "arch": np.asarray(result.arch).tolist()}
  out.update(space.describe_arch(np.asarray(result.arch)))
  out.update(seconds=float(result.seconds), queries=int(result.queries), config=result.config, trace=result.trace,
             extra=result.extra)
  return _jsonable(out)


def write_json(result: SearchResult, path: str) -> dict:
  """Writes :func:`to_json` to ``path`` atomically (temporary file, then rename); returns it."""
  d = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(d):
    raise JaxnasInputError(f"output directory {d!r} does not exist")
  doc = to_json(result)
  with atomic(path, "w", encoding="utf-8") as f:
    json.dump(doc, f, indent=1, allow_nan=False)
    f.write("\n")
  return doc
