"""jaxnas' stax-style kernel layers against independent computations.

* parameter-free linear layers (AvgPool, Linear, Identity, Zero, GlobalAvgPool): the output
  kernel equals the input kernel of the layer's own finite output, exactly;
* Dense-ReLU-Dense on vectors: the closed-form arc-cosine kernels (Cho & Saul 2009) in numpy;
* Conv and ReLU: Monte-Carlo estimates over wide random layers (their apply_fn);
* the x1-by-x2 block equals the slice of the joint kernel; FanOut/parallel/FanInSum add
  independent branches; bad layer configurations are refused with the value named.
neural-tangents itself is the oracle of ``tests/ntk/test_nt_oracle.py``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnas import _compat
from jaxnas.errors import JaxnasInputError
from jaxnas.ntk import stax
from jaxnas.spaces import ops


@pytest.fixture(scope="module")
def x():
  return jax.random.normal(jax.random.key(0), (3, 5, 5, 2))


def _gram(y):
  """The input kernel of ``y``: per-channel covariances, joint over samples and pixels."""
  return stax._input_kernel(y).nngp


@pytest.mark.parametrize("layer,fn", [
    (stax.AvgPool(), ops.avg_pool_3x3),
    (stax.Identity(), lambda a: a),
    (stax.Zero(), jnp.zeros_like),
    (stax.Linear(np.random.default_rng(0).normal(size=(25, 25))), None),
])
def test_parameter_free_layers_are_exact(layer, fn, x):
  with _compat.enable_x64():
    x64 = x.astype(jnp.float64)
    y = layer.apply_fn((), x64) if fn is None else fn(x64)
    k = layer.kernel_fn(x64)
    np.testing.assert_allclose(k.nngp, _gram(y), atol=1e-12)
    assert float(jnp.max(jnp.abs(k.ntk))) == 0.0


def test_global_avg_pool_is_exact(x):
  with _compat.enable_x64():
    x64 = x.astype(jnp.float64)
    k = stax.GlobalAvgPool().kernel_fn(x64)
    m = jnp.mean(x64, axis=(1, 2))
    np.testing.assert_allclose(k.nngp, m @ m.T / x.shape[-1], rtol=1e-12)


def test_dense_relu_dense_equals_arc_cosine_closed_form():
  rng = np.random.default_rng(1)
  v = rng.normal(size=(4, 7))
  w1, w2 = 1.3, 0.7
  net = stax.serial(stax.Dense(9, W_std=w1), stax.Relu(), stax.Dense(1, W_std=w2))
  with _compat.enable_x64():
    k = net.kernel_fn(jnp.asarray(v), get=("nngp", "ntk"))
  k0 = v @ v.T / v.shape[1]
  k1 = w1 ** 2 * k0                       # after the first Dense; its NTK is k1 as well
  d = np.sqrt(np.diag(k1))
  cos = np.clip(k1 / np.outer(d, d), -1, 1)
  t = np.arccos(cos)
  relu = np.outer(d, d) * (np.sin(t) + (np.pi - t) * cos) / (2 * np.pi)
  dot = (np.pi - t) / (2 * np.pi)
  # the textbook arccos form loses ~sqrt(eps) in t near the diagonal: 1e-7, not 1e-12
  np.testing.assert_allclose(k[0], w2 ** 2 * relu, rtol=1e-7)
  np.testing.assert_allclose(k[1], w2 ** 2 * (relu + k1 * dot), rtol=1e-7)


@pytest.mark.parametrize("size", [1, 3])
def test_conv_nngp_and_ntk_match_monte_carlo(size, x):
  """E_W[y y^T / n] of one wide conv (NTK parameterisation), and its NTK J J^T / n."""
  conv = stax.Conv(8192, (size, size), W_std=1.4)
  _, w = conv.init_fn(jax.random.key(5), x.shape)
  y = conv.apply_fn(w, x)
  k = conv.kernel_fn(x)
  err = float(jnp.linalg.norm(_gram(y) - k.nngp) / jnp.linalg.norm(k.nngp))
  assert err < 0.06, err  # a missing 1/k^2 or W_std^2 would be off by a factor
  # NTK in W: <dy_c/dW, dy'_c/dW> summed over W = W_std^2 A(K) exactly, for every channel c
  jac = jax.jacrev(lambda ww: conv.apply_fn(ww, x)[..., 0])(w[..., :1])
  emp = jnp.einsum("ahwijc,bgvijc->abhwgv", jac[..., 0], jac[..., 0])
  np.testing.assert_allclose(emp, k.ntk, rtol=1e-4, atol=1e-6)


def test_relu_matches_monte_carlo():
  """ReLU of a Gaussian field with covariance K: E[relu(u) relu(u')] by sampling."""
  rng = np.random.default_rng(2)
  a = rng.normal(size=(6, 6))
  cov = a @ a.T / 6 + 0.1 * np.eye(6)
  k = stax.Kernel(jnp.asarray(cov), jnp.asarray(cov))
  out = stax.Relu().kernel_fn(k)
  u = rng.multivariate_normal(np.zeros(6), cov, size=400_000)
  mc = np.maximum(u, 0).T @ np.maximum(u, 0) / len(u)
  np.testing.assert_allclose(out.nngp, mc, rtol=0.03, atol=0.01)
  h = (u > 0).astype(float)  # E[relu'(u) relu'(u')] times the incoming NTK
  np.testing.assert_allclose(out.ntk, cov * (h.T @ h / len(u)), rtol=0.03, atol=0.01)


def test_cross_block_is_a_slice_of_the_joint_kernel(x):
  net = stax.serial(stax.Conv(8, (3, 3)), stax.Relu(), stax.AvgPool(), stax.GlobalAvgPool(),
                    stax.Dense(1))
  joint = net.kernel_fn(x)
  block = net.kernel_fn(x[:1], x[1:])
  np.testing.assert_allclose(block.ntk, joint.ntk[:1, 1:], rtol=1e-6)
  np.testing.assert_allclose(net.kernel_fn(x, get="nngp"), joint.nngp, rtol=1e-6)


def test_fan_in_sum_adds_independent_branches(x):
  a, b = stax.Conv(8, (3, 3), W_std=0.5), stax.serial(stax.Relu(), stax.Conv(8, (1, 1)))
  both = stax.serial(stax.FanOut(2), stax.parallel(a, b), stax.FanInSum())
  k, ka, kb = both.kernel_fn(x), a.kernel_fn(x), b.kernel_fn(x)
  np.testing.assert_allclose(k.nngp, ka.nngp + kb.nngp, rtol=1e-6)
  np.testing.assert_allclose(k.ntk, ka.ntk + kb.ntk, rtol=1e-6)
  shape, params = both.init_fn(jax.random.key(0), x.shape)
  assert tuple(shape) == x.shape[:3] + (8,)
  assert both.apply_fn(params, x).shape == x.shape[:3] + (8,)


def test_bad_layers_are_refused(x):
  with pytest.raises(JaxnasInputError, match=r"filter_shape=\(2, 2\)"):
    stax.Conv(4, (2, 2))
  with pytest.raises(JaxnasInputError, match="'VALID'"):
    stax.Conv(4, (3, 3), padding="VALID")
  with pytest.raises(JaxnasInputError, match="b_std=0.1"):
    stax.Dense(1, b_std=0.1)
  with pytest.raises(JaxnasInputError, match="GlobalAvgPool before"):
    stax.Dense(1).kernel_fn(x)
  with pytest.raises(JaxnasInputError, match="spatial"):
    stax.serial(stax.GlobalAvgPool(), stax.AvgPool()).kernel_fn(x)
  with pytest.raises(JaxnasInputError, match="differ in shape"):
    stax.Relu().kernel_fn(x, x[:, :4])
