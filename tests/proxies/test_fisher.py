"""fisher: gate-gradient formula against a per-example loop over explicit activations and their
gradients (toy network), the NB201 shared build equals the discrete network, and the DARTS
supernet's gates against the weight-times-gradient identity of a one-image batch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxnas import spaces
from jaxnas.proxies import _common, get_proxy
from jaxnas.proxies.fisher import fisher_from_gate_grads
from jaxnas.spaces import params as P
from jaxnas.spaces.darts.topology import DIL3, DIL5, SEP3, SEP5, SKIP, cell_plan
from tests.conftest import TINY, tiny_batch_of
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



@pytest.mark.parametrize("mode", ["map", "eager"])
def test_fisher_darts_equals_perturbed_convs_of_the_evaluation_network(mode, monkeypatch):
  """fisher on the DARTS supernet (``DartsSupernet.gates``; ``map``: scanned build, ``eager``:
  unrolled) equals sum_l n_l sum_c 1/2 mean_n (sum_hw a dL/da)^2 over every conv of the
  genotype's evaluation network (an independent build over :func:`discrete_params` of the same
  variables) and its classifier: ``a`` each conv output before BN, recorded by wrapping the
  stem's, the depthwise and the pointwise convolutions, ``dL/da`` by additive zero
  perturbations on them and on the logits, ``n_l`` the weights per output channel of the kernel
  each was called with."""
  from jaxnas.spaces import darts, ops as L
  from jaxnas.spaces.darts import operations
  d = spaces.get_space("darts")
  cfg = dict(C=4, L=3, affine=True, pool_bn=False, conv_impl="shifted")
  arch = np.asarray(d.sample(jax.random.key(5), 1))[0]
  batch = tiny_batch_of(6)
  net = spaces.Network(d, d.model(**cfg, unrolled=(mode == "eager")), arch)
  variables = net.init(jax.random.key(2), batch.x)
  got = float(jax.jit(lambda v: get_proxy("fisher").fn(net, v, batch, jax.random.key(0)))(
      variables) if mode == "map" else get_proxy("fisher").fn(net, variables, batch,
                                                              jax.random.key(0)))

  ev = darts.model(fixed_arch=arch, **{k: cfg[k] for k in ("C", "L", "conv_impl")})
  vd = {k: darts.discrete_params(t, arch, C=cfg["C"], L=cfg["L"]) for k, t in variables.items()}
  acts, fans = [], []
  originals = {"conv2d": L.conv2d, "depthwise_conv": operations.depthwise_conv,
               "pointwise": operations.pointwise}

  def recorded(fn, eps):
    def conv(x, kernel, *args, **kw):
      y = fn(x, kernel, *args, **kw)
      acts.append(y)
      fans.append(int(np.prod(kernel.shape[:-1])))
      return y + eps[len(acts) - 1]
    return conv

  def perturbed(eps):
    acts.clear()
    fans.clear()
    monkeypatch.setattr(L, "conv2d", recorded(originals["conv2d"], eps))
    for name in ("depthwise_conv", "pointwise"):
      monkeypatch.setattr(operations, name, recorded(originals[name], eps))
    try:
      return ev.apply(vd, batch.x) + eps[-1]
    finally:
      monkeypatch.setattr(L, "conv2d", originals["conv2d"])
      for name in ("depthwise_conv", "pointwise"):
        monkeypatch.setattr(operations, name, originals[name])

  logits = perturbed([0.0] * 200)
  a_np = [np.asarray(h, np.float64) for h in acts] + [np.asarray(logits, np.float64)]
  fan_np = fans + [vd["params"]["classifier"]["kernel"].shape[0]]
  eps = [jnp.zeros(h.shape, jnp.float32) for h in a_np]
  dlda = jax.grad(lambda e: _common.cross_entropy(perturbed(e), batch.y))(eps)
  want = 0.0
  for h, g, n in zip(a_np, dlda, fan_np):
    g = np.sum(h * np.asarray(g, np.float64), axis=tuple(range(1, h.ndim - 1)))   # (B, C)
    want += n * np.sum(0.5 * np.mean(g**2, axis=0))
  # layers: stem, classifier, per cell its preprocessing (FactorizedReduce: 2) and each kept
  # op's convs (sep 4, dil 2, a stride-2 skip's FactorizedReduce 2, pools none)
  convs = {SEP3: 4, SEP5: 4, DIL3: 2, DIL5: 2}
  plan, _ = cell_plan(cfg["C"], cfg["L"], 3)
  n_layers = 2 + sum(
      (2 if red_prev else 1) + 1 + sum(
          convs.get(int(op), 2 if (red and op == SKIP and src < 2) else 0)
          for src, op in arch[1 if red else 0])
      for _, _, _, red, red_prev in plan)
  assert len(a_np) == n_layers
  np.testing.assert_allclose(got, want, rtol=1e-4)
