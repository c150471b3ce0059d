"""Analytic infinite-width kernels of NB201 cell networks (neural_tangents.stax) against Monte-Carlo
estimates and the empirical NTK of the finite network at large width (loose tolerances), and the
path counting that makes stax's FanInSum exact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas.errors import JaxnasInputError
from jaxnas.ntk import empirical, infinite
from jaxnas.spaces import nb201, ops

# pool and skip paths from one node meet twice (needs the exact Aggregate), plus convs
MIXED = "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"


def test_components_reproduce_parameter_free_cells():
  """For cells without convs, node 3 = sum_a mult * P^a x exactly; compare with running the ops."""
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  p = jnp.asarray(infinite.pool_matrix(8, 8))
  for arch in nb201.all_archs()[::97]:
    if np.any((arch == 2) | (arch == 3)):
      continue
    nodes = [x]
    for i in (1, 2, 3):
      acc = jnp.zeros_like(x)
      for e, (to, frm) in enumerate(((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))):
        if to == i and arch[e] == 1:
          acc = acc + nodes[frm]
        elif to == i and arch[e] == 4:
          acc = acc + ops.avg_pool_3x3(nodes[frm])
      nodes.append(acc)
    poly = infinite.components(arch)[3].get("input", {})
    q = sum((m * np.linalg.matrix_power(np.asarray(p, np.float64), a) for a, m in poly.items()),
            np.zeros((64, 64)))
    want = jnp.einsum("ij,bjc->bic", q, x.reshape(2, 64, 3)).reshape(x.shape)
    np.testing.assert_allclose(nodes[3], want, atol=1e-4)


def test_components_count_paths():
  comps = infinite.components(
      "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|"
      "skip_connect~2|")
  assert dict(comps[3]["input"]) == {0: 4}   # x + x + 2x: covariance 16 K, not stax's naive 4 K
  comps = infinite.components(MIXED)
  assert dict(comps[3]["input"]) == {0: 1, 2: 1} and set(comps[3]) == {"input", 0, 4}


@pytest.fixture(scope="module")
def inputs():
  return jax.random.normal(jax.random.key(1), (3, 8, 8, 3))


@pytest.mark.parametrize("arch", [MIXED, "|skip_connect~0|+|skip_connect~0|skip_connect~1|+"
                                         "|nor_conv_3x3~0|skip_connect~1|avg_pool_3x3~2|"])
def test_nngp_matches_monte_carlo(arch, inputs):
  k = infinite.analytic_kernels(arch, inputs)
  a = tuple(nb201.encode(arch))

  def out(key):
    return infinite.finite_apply(infinite.finite_init(key, a, C=64), inputs, a)

  outs = jax.jit(jax.vmap(out))(jax.random.split(jax.random.key(2), 1500))
  mc = jnp.einsum("sik,sjk->ij", outs, outs) / outs.shape[0]
  assert float(jnp.linalg.norm(mc - k.nngp) / jnp.linalg.norm(k.nngp)) < 0.08


def test_empirical_ntk_approaches_analytic_at_large_width(inputs):
  a = tuple(nb201.encode(MIXED))
  k = infinite.analytic_kernels(MIXED, inputs).ntk
  fn = jax.jit(lambda p: empirical.empirical_ntk(
      lambda q, x: infinite.finite_apply(q, x, a), p, inputs, coupled=False))
  errs = [float(jnp.linalg.norm(fn(infinite.finite_init(jax.random.key(s), a, C=c)) - k)
                / jnp.linalg.norm(k)) for c, s in ((16, 0), (256, 0))]
  assert errs[1] < 0.15 and errs[1] < errs[0]


def test_bad_input():
  with pytest.raises(JaxnasInputError, match="square"):
    infinite.analytic_kernels(MIXED, jnp.zeros((2, 8, 4, 3)))
