"""l2_norm: per-layer Frobenius norms on a toy network, and on NB201 exactly the discrete
network's kernels (unused ops masked out)."""

import jax
import numpy as np

from jaxnas.proxies.grad_norm import grad_norm_score
from jaxnas.spaces import nb201
from jaxnas.spaces import params as P
from tests.conftest import tiny_batch_of, tiny_net
from tests.proxies.test_snip import (ARCH, discrete, discrete_weights, run_proxy, toy_layers,
                                     toy_params)


def test_l2_norm_per_layer_on_toy():
  params = toy_params(jax.random.key(8))
  want = sum(np.linalg.norm(np.asarray(w, np.float64).ravel()) for w in toy_layers(params))
  got = jax.jit(grad_norm_score)(params, P.select(params, P.WEIGHTS))
  np.testing.assert_allclose(float(got), want, rtol=1e-6)


def test_l2_norm_nb201_is_the_discrete_networks_kernels():
  batch = tiny_batch_of(2)
  net = tiny_net(ARCH)
  variables = jax.jit(net.init)(jax.random.key(9), batch.x)
  archs = [ARCH, np.zeros(6, np.int32), np.full(6, 3, np.int32), nb201.from_index(9930)]
  got = run_proxy("l2_norm", net, variables, batch, archs)
  for arch, value in zip(archs, got):
    _, vd = discrete(arch, variables)
    want = sum(np.linalg.norm(np.asarray(w, np.float64).ravel())
               for w in discrete_weights(vd["params"]).values())
    np.testing.assert_allclose(value, want, rtol=1e-5, err_msg=nb201.decode(arch))
  # the all-none cell keeps only stem, reductions and classifier; more convs, larger norm
  assert got[1] < got[0] < got[2]
