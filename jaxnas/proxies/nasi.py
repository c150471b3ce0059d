"""NASI's training-free NTK trace estimate and its label- and data-agnostic variants.

    nasi = ||Theta~_0||_tr = || b^-1 sum_{x in X_j} grad_theta L_x ||_2^2

the squared norm of the minibatch-mean cross-entropy gradient over all trainable parameters, on one
batch (NASI Eq. 10-12, Shu et al., "NASI: Label- and Data-agnostic Neural Architecture Search at
Initialization", ICLR 2022). It estimates the NTK trace norm ``||Theta_0||_tr`` (up to the constant
``m / gamma``) through the Lipschitz bound ``||grad L_x|| <= gamma ||J_x||_F`` and Jensen's
inequality over batches. The network runs as given (train-mode BN: the gradient is that of the
batch loss, samples coupled through the batch statistics).

Variants (NASI Prop. 2 and Table 2):

* ``nasi_random_labels``: labels drawn uniformly from the classes with the proxy's key;
* ``nasi_gaussian``: inputs replaced by N(0, 1) noise of the batch's shape (drawn with the key),
  the batch's labels kept; only the shape of ``batch.x`` is read.
"""

import jax
import jax.numpy as jnp

from jaxnas.proxies import _common
from jaxnas.proxies.registry import register


def sq_norm(grads):
  """``||g||_2^2`` over every leaf of a gradient tree."""
  return sum(jnp.sum(jnp.square(v)) for v in jax.tree_util.tree_leaves(grads))


def sq_grad_norm(net, variables, x, y):
  """``||grad_theta mean_i CE(f(x_i), y_i)||^2`` over all of ``variables['params']``."""
  def loss(p):
    return _common.cross_entropy(_common.apply(net, variables, x, p), y)
  return sq_norm(jax.grad(loss)(variables["params"]))


@register("nasi", needs_labels=True, batch_size=64, cpu_eager=True, shares=("loss_grad",))
def nasi(net, variables, batch, key):
  """NASI estimate ||mean_batch grad_theta CE||^2 (all params, true labels, train-mode BN).

  Shu et al., ICLR 2022, Eq. 12: the squared norm of the minibatch-mean loss gradient, b = 64 (the
  paper's DARTS setting). The gradient is the zero-cost family's ``dL_CE/dW``, computed once when
  scored with ``grad_norm``, ``snip`` or ``plain`` (one joint pass).
  """
  del key
  return sq_norm(_common.loss_grad(net, variables, batch))


@register("nasi_random_labels", cpu_eager=True)
def nasi_random_labels(net, variables, batch, key):
  """NASI estimate with uniformly random labels (label-agnostic NASI, Shu et al. 2022 Table 2).

  ||mean_batch grad_theta CE(f(x), y~U{0..K-1})||^2; labels drawn from the proxy key.
  """
  y = jax.random.randint(key, batch.x.shape[:1], 0, net.module.num_classes, jnp.int32)
  return sq_grad_norm(net, variables, batch.x, y)


@register("nasi_gaussian", needs_labels=True, cpu_eager=True)
def nasi_gaussian(net, variables, batch, key):
  """NASI estimate on N(0, 1) inputs of the batch's shape (data-agnostic NASI, Prop. 2).

  ||mean_batch grad_theta CE(f(z), y)||^2 with z ~ N(0, I) drawn from the proxy key, y the batch
  labels (Shu et al., ICLR 2022, Table 2 "random Gaussian data").
  """
  z = jax.random.normal(key, batch.x.shape, batch.x.dtype)
  return sq_grad_norm(net, variables, z, batch.y)
