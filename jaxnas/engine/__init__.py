"""Batched, compiled, sharded and resumable scoring of many architectures.

* :func:`score` -> ``{proxy: scores}`` in memory; :func:`iter_scores` chunk by chunk.
* :func:`score_to_file` -> a long CSV written chunk by chunk, resumable after a kill
  (:mod:`jaxnas.engine.store`).
* :mod:`jaxnas.engine.sharding`: devices (1-D mesh) and hosts (``process_share``).
* :class:`Progress`: a progress bar with architectures per second and ETA.
"""

from jaxnas.engine.progress import Progress
from jaxnas.engine.runner import make_settings, score_to_file
from jaxnas.engine.scoring import iter_scores, make_score_fn, score
from jaxnas.engine.store import OutputError, load, merge, verify

__all__ = ["make_score_fn", "score", "iter_scores", "score_to_file", "make_settings", "Progress",
           "OutputError", "load", "merge", "verify"]
