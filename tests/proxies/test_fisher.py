"""fisher: gate-gradient formula against a per-example loop over explicit activations and their
gradients (toy network), and the NB201 shared build equals the discrete network."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxnas.proxies import _common
from jaxnas.proxies.fisher import fisher_from_gate_grads
from jaxnas.spaces import params as P
from tests.conftest import TINY
from tests.proxies.test_snip import (ARCH, discrete, nb201_setup, run_proxy, toy_apply, toy_data,
                                     toy_params)

LAYER_OF = {"a": ("conv_a", None), "s0": ("conv_stack", 0), "s1": ("conv_stack", 1),
            "head": ("classifier", None)}


def _per_example_fisher(acts, dlda, fan):
  """0.5 * mean_n (sum_spatial a * dL/da)^2 per channel, by an explicit loop over examples."""
  a, d = np.asarray(acts, np.float64), np.asarray(dlda, np.float64)
  per_n = [np.sum((a[n] * d[n]).reshape(-1, a.shape[-1]), axis=0) for n in range(a.shape[0])]
  return 0.5 * np.mean(np.square(per_n), axis=0) * fan


def test_fisher_matches_per_example_loop_on_toy():
  params = toy_params(jax.random.key(4))
  x, y = toy_data(n=5)
  # explicit activations and d loss / d activation (additive zero shifts on the layer outputs)
  acts = jax.jit(lambda p: (lambda r: (toy_apply(p, x, record=r), r)[1])({}))(params)
  shifts = jax.tree_util.tree_map(jnp.zeros_like, acts)
  dlda = jax.jit(jax.grad(lambda s: _common.cross_entropy(toy_apply(params, x, shifts=s), y)))(
      shifts)
  fans = {"a": 9 * 3, "s0": 4, "s1": 4, "head": 4}
  per_layer = {k: _per_example_fisher(acts[k], dlda[k], fans[k]).sum() for k in acts}

  # the library: gradients of ones gates laid out beside the kernels (stacked layers stacked)
  B = x.shape[0]
  gates = {"conv_a": {"gate": jnp.ones((B, 4))}, "conv_stack": {"gate": jnp.ones((2, B, 4))},
           "classifier": {"gate": jnp.ones((B, 5))}}
  as_toy = lambda g: {"a": g["conv_a"]["gate"], "s0": g["conv_stack"]["gate"][0],
                      "s1": g["conv_stack"]["gate"][1], "head": g["classifier"]["gate"]}
  gg = jax.jit(jax.grad(lambda g: _common.cross_entropy(toy_apply(params, x, gates=as_toy(g)),
                                                        y)))(gates)
  masks = P.select(params, P.WEIGHTS)
  score = jax.jit(fisher_from_gate_grads)
  np.testing.assert_allclose(float(score(gg, params, masks)), sum(per_layer.values()), rtol=1e-5)
  masks["conv_stack"]["kernel"] = jnp.array([0.0, 1.0])
  np.testing.assert_allclose(float(score(gg, params, masks)),
                             sum(per_layer.values()) - per_layer["s0"], rtol=1e-5)


def test_fisher_nb201_equals_discrete_network():
  net, variables, batch = nb201_setup()
  got = run_proxy("fisher", net, variables, batch)
  d, vd = discrete(ARCH, variables, gates=True)
  shapes = jax.eval_shape(d.init, jax.random.key(0), batch.x)["gates"]
  gates = jax.tree_util.tree_map(lambda s: jnp.ones(s.shape, s.dtype), shapes)
  gg = jax.jit(jax.grad(lambda g: _common.cross_entropy(d.apply({**vd, "gates": g}, batch.x),
                                                        batch.y)))(gates)
  kernels = traverse_util.flatten_dict(vd["params"])
  want, n_layers = 0.0, 0
  for path, g in traverse_util.flatten_dict(gg).items():
    k = kernels[path[:-1] + ("kernel",)]
    g = np.asarray(g, np.float64)                        # (B, C_out): sum_spatial a * dL/da
    want += 0.5 * np.mean(g**2, axis=0).sum() * np.prod(k.shape[:-1])
    n_layers += 1
  assert n_layers == 1 + 3 * 3 + 2 * 3 + 1 and TINY["N"] == 1
  np.testing.assert_allclose(got, want, rtol=1e-4)
  assert want > 0
