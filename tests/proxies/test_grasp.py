"""grasp: H g against central finite differences of the gradient (toy network, float64), forward-
over-reverse (linearize or jvp) equals double backpropagation, and the NB201 shared build equals the discrete network
scored with the reference's double-backprop formulation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from jaxnas._compat import enable_x64

from jaxnas.errors import JaxnasInputError
from jaxnas.proxies import _common
from jaxnas.proxies.grasp import grasp_score, hessian_gradient_product
from jaxnas.spaces import params as P
from tests.proxies.test_snip import (ARCH, discrete, discrete_weights, nb201_setup, run_proxy,
                                     toy_data, toy_loss, toy_params)


def test_grasp_hessian_product_matches_finite_differences_on_toy():
  with enable_x64():
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64),
                                    toy_params(jax.random.key(3)))
    x, y = toy_data()
    x = x.astype(jnp.float64)
    loss = lambda p: toy_loss(p, x, y)
    sel = P.select(params, P.WEIGHTS)
    hg, g = jax.jit(lambda p: hessian_gradient_product(loss, p, sel))(params)
    hg_rev, _ = jax.jit(lambda p: hessian_gradient_product(loss, p, sel, "reverse"))(params)
    hg_jvp, _ = jax.jit(lambda p: hessian_gradient_product(loss, p, sel, "jvp"))(params)
    # central differences of the full gradient along the weights' gradient direction
    grad = jax.jit(jax.grad(loss))
    h = 1e-4
    plus = grad(jax.tree_util.tree_map(lambda w, d: w + h * d, params, g))
    minus = grad(jax.tree_util.tree_map(lambda w, d: w - h * d, params, g))
    fd = jax.tree_util.tree_map(lambda a, b: (a - b) / (2 * h), plus, minus)
    score = float(jax.jit(lambda p: grasp_score(loss, p, sel))(params))
  flat_fd, flat_hg = traverse_util.flatten_dict(fd), traverse_util.flatten_dict(hg)
  for k in flat_fd:
    np.testing.assert_allclose(flat_hg[k], flat_fd[k], rtol=1e-5, atol=1e-9, err_msg=str(k))
  for other in (hg_rev, hg_jvp):
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-14),
                           hg, other)
  # g excludes biases and BN parameters
  assert not np.any(np.asarray(traverse_util.flatten_dict(g)[("classifier", "bias")]))
  w = traverse_util.flatten_dict(params)
  want = -sum(np.sum(np.asarray(w[k]) * np.asarray(flat_fd[k])) for k in w if P.kind_of(k)
              in P.WEIGHTS)
  np.testing.assert_allclose(score, want, rtol=1e-5)


def test_grasp_rejects_unknown_method():
  with pytest.raises(JaxnasInputError, match="'forward', 'jvp', 'reverse'|forward, jvp, reverse"):
    hessian_gradient_product(lambda p: jnp.sum(p["w"] ** 3), {"w": jnp.ones(2)}, {"w": 1.0},
                             method="exact")


def test_grasp_nb201_equals_discrete_network():
  net, variables, batch = nb201_setup()
  got = run_proxy("grasp", net, variables, batch)
  d, vd = discrete(ARCH, variables)
  loss = lambda p: _common.cross_entropy(d.apply({**vd, "params": p}, batch.x), batch.y)
  sel = P.select(vd["params"], P.WEIGHTS)

  def reference(p):  # the reference's formulation: d/dW <dL/dW, stop_grad(g)> over the weights
    g = jax.lax.stop_gradient(jax.grad(loss)(p))
    z = lambda q: P.masked_sum(lambda t: jnp.sum(t), jax.tree_util.tree_map(
        lambda a, b: a * b, jax.grad(loss)(q), g), sel)
    return jax.grad(z)(p)

  hg = discrete_weights(jax.jit(reference)(vd["params"]))
  w = discrete_weights(vd["params"])
  want = -sum(np.sum(np.asarray(w[k], np.float64) * np.asarray(hg[k])) for k in w)
  np.testing.assert_allclose(got, want, rtol=2e-3)
  assert want != 0.0
