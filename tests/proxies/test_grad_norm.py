"""grad_norm: per-layer norms (stacked leaves split, masks honoured) on a toy network, and the NB201
shared build against the discrete network."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas.proxies.grad_norm import grad_norm_score
from jaxnas.spaces import params as P
from tests.proxies.test_snip import (ARCH, discrete_ce_grads, discrete_weights, nb201_setup,
                                     run_proxy, toy_data, toy_layers, toy_loss, toy_params)


def test_grad_norm_is_sum_of_per_layer_norms_on_toy():
  params = toy_params(jax.random.key(1))
  x, y = toy_data()
  grads = jax.jit(jax.grad(toy_loss))(params, x, y)
  layers = [np.asarray(g, np.float64) for g in toy_layers(grads)]
  norms = [np.sqrt(np.sum(g**2)) for g in layers]
  score = jax.jit(grad_norm_score)
  np.testing.assert_allclose(float(score(grads, P.select(params, P.WEIGHTS))), sum(norms),
                             rtol=1e-5)
  # not the global norm of the concatenated gradient
  assert sum(norms) > np.sqrt(sum(np.sum(g**2) for g in layers)) * 1.01
  # a per-layer mask on the stacked leaf drops exactly that layer
  masks = P.select(params, P.WEIGHTS)
  masks["conv_stack"]["kernel"] = jnp.array([1.0, 0.0])
  np.testing.assert_allclose(float(score(grads, masks)), sum(norms) - norms[2], rtol=1e-5)


def test_grad_norm_nb201_equals_discrete_network():
  net, variables, batch = nb201_setup()
  got = run_proxy("grad_norm", net, variables, batch)
  _, grads = discrete_ce_grads(ARCH, variables, batch)
  g = discrete_weights(grads)
  # discrete stem, 3 stages x 3 cell convs, 2 x 3 reduction convs, classifier: one layer per leaf
  assert len(g) == 1 + 3 * 3 + 2 * 3 + 1
  want = sum(np.linalg.norm(np.asarray(v, np.float64).ravel()) for v in g.values())
  np.testing.assert_allclose(got, want, rtol=1e-4)
