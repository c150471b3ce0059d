"""plain: the signed saliency equals the derivative of the loss along a rescaling of the weights
(toy network, forward mode and finite differences), and the NB201 shared build equals the discrete
network."""

import jax
import jax.numpy as jnp
import numpy as np
from jaxnas._compat import enable_x64

from jaxnas.proxies.snip import saliency
from jaxnas.spaces import params as P
from tests.proxies.test_snip import (ARCH, discrete_ce_grads, discrete_weights, nb201_setup,
                                     run_proxy, toy_data, toy_loss, toy_params)


def test_plain_is_directional_derivative_along_weights_on_toy():
  with enable_x64():
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64),
                                    toy_params(jax.random.key(2)))
    x, y = toy_data()
    x = x.astype(jnp.float64)
    sel = P.select(params, P.WEIGHTS)
    got = float(jax.jit(lambda p: saliency(
        p, jax.grad(lambda q: toy_loss(q, x, y))(p), sel, signed=True))(
        params))
    # L((1 + t) W) on the weights only, other parameters fixed
    scaled = lambda t: toy_loss(jax.tree_util.tree_map(
        lambda w, s: w * (1 + t) if s else w, params, sel), x, y)
    jvp = float(jax.jit(lambda: jax.jvp(scaled, (0.0,), (1.0,))[1])())
    h = 1e-5
    fd = (float(jax.jit(scaled)(h)) - float(jax.jit(scaled)(-h))) / (2 * h)
    snip = float(jax.jit(lambda p: saliency(
        p, jax.grad(lambda q: toy_loss(q, x, y))(p), sel))(params))
  np.testing.assert_allclose(got, jvp, rtol=1e-9)
  np.testing.assert_allclose(got, fd, rtol=1e-5)
  assert abs(got) < snip


def test_plain_nb201_equals_discrete_network():
  net, variables, batch = nb201_setup()
  got = run_proxy("plain", net, variables, batch)
  params, grads = discrete_ce_grads(ARCH, variables, batch)
  w, g = discrete_weights(params), discrete_weights(grads)
  terms = [np.sum(np.asarray(w[p], np.float64) * np.asarray(g[p])) for p in w]
  want = sum(terms)
  np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * sum(abs(t) for t in terms))
