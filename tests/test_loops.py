"""``map_rows``: lax.map, a Python loop and a Python loop over one compiled program agree."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas._loops import map_rows


def test_three_ways_agree_and_compile_rows_traces_once():
  calls = []

  def f(row):
    calls.append(1)
    return {"s": jnp.sum(jnp.sin(row["a"]) * row["b"]), "v": row["a"] * 2.0}

  xs = {"a": jnp.arange(12.0).reshape(4, 3), "b": jnp.arange(4.0)[:, None] + 1.0}
  mapped = map_rows(f, xs, python=False)
  looped = map_rows(f, xs, python=True)
  n = len(calls)
  compiled = map_rows(f, xs, python=True, compile_rows=True)
  assert len(calls) == n + 1                # traced once for the four rows
  for got in (looped, compiled):
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(mapped)
    for k in ("s", "v"):
      np.testing.assert_allclose(np.asarray(got[k]), np.asarray(mapped[k]), rtol=1e-6)
  assert mapped["s"].shape == (4,) and mapped["v"].shape == (4, 3)
