"""Batched, compiled scoring of many architectures."""

from jaxnas.engine.scoring import make_score_fn, score

__all__ = ["make_score_fn", "score"]
