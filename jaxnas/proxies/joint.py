"""Several proxies in one pass, computing once what they share.

The zero-cost gradient proxies read the same quantity: ``grad_norm`` (``sum_l ||g_l||_F``),
``snip`` (``sum |W * g|``) and ``plain`` (``sum W * g``) are three reductions of one gradient
``g = dL_CE/dW`` of one initialised network on one minibatch. Scored one by one, each pays the
forward and backward pass again (XLA does not merge the three copies: the gradients of a branching
network are separate conditionals). A proxy names what it reads at registration
(``shares=("loss_grad",)``) and computes it through :func:`shared`; :func:`joint` builds one
:class:`~jaxnas.proxies.Proxy` whose ``fn`` returns its members' scores as a vector and, while it
runs, hands each member the quantity another member already computed for the same network,
variables and minibatch (the same Python objects: one trace, or one eager call). Outside a joint
call :func:`shared` just computes, so a proxy scored alone is unchanged.

:func:`plan` splits a list of proxies into groups the engine scores together: members share a tag
and everything the engine derives from a proxy before calling it (precision, module
configuration, minibatch, initialised variables), so a member's joint score equals its score alone
up to float32 rounding (one compiled program instead of three).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from jaxnas.errors import JaxnasInputError
from jaxnas.proxies.registry import Proxy, get_proxy

_CACHE: contextvars.ContextVar = contextvars.ContextVar("jaxnas_proxies_shared", default=None)


def shared(tag: str, args: tuple, compute: Callable):
  """``compute()``, or its value from earlier in the same joint call for the same ``tag`` and the
  same objects ``args`` (compared by identity, e.g. ``(net, variables, batch)``)."""
  cache = _CACHE.get()
  if cache is None:
    return compute()
  for t, a, value in cache:
    if t == tag and len(a) == len(args) and all(x is y for x, y in zip(a, args)):
      return value
  value = compute()
  cache.append((tag, args, value))   # keeps ``args`` alive, so identities stay unique
  return value


@contextlib.contextmanager
def sharing():
  """Within this block, :func:`shared` computes each quantity once."""
  token = _CACHE.set([])
  try:
    yield
  finally:
    _CACHE.reset(token)


def _fingerprint(p: Proxy) -> tuple:
  """What the engine derives from a proxy before calling it: equal for members of one group."""
  return (p.x64, p.config, p.batch_size, p.needs_data, p.needs_variables)


@functools.lru_cache(maxsize=None)
def joint(names: tuple) -> Proxy:
  """One proxy scoring ``names`` (two or more) in one pass: ``fn`` returns their scores, in
  order, as a vector (``Proxy.members`` holds the names). Raises :class:`JaxnasInputError` when
  the members could not share a pass (:func:`plan` never groups those)."""
  names = tuple(names)
  members = [get_proxy(n) for n in names]
  if len(members) < 2 or len(set(names)) != len(names):
    raise JaxnasInputError(f"a joint proxy needs two or more distinct proxies, got {list(names)}")
  prints = {p.name: _fingerprint(p) for p in members}
  if len(set(prints.values())) != 1 or any(p.members for p in members):
    raise JaxnasInputError(
        f"proxies {', '.join(names)} cannot be scored in one pass: they differ in precision, "
        f"module configuration, minibatch size or variables ({prints})")
  first = members[0]

  def fn(net, variables, batch, key):
    with sharing():
      return jnp.stack([jnp.asarray(p.fn(net, variables, batch, key)).reshape(())
                        for p in members])

  fn.__doc__ = f"Joint pass of {', '.join(names)} (scores in that order)."
  return first._replace(
      name="+".join(names), fn=fn, needs_labels=any(p.needs_labels for p in members),
      cpu_eager=all(p.cpu_eager for p in members),
      requires=tuple(sorted(set().union(*(p.requires for p in members)))),
      shares=tuple(sorted(set().union(*(p.shares for p in members)))), members=names)


def _same_batch(a, b) -> bool:
  if a is b:
    return True
  return all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(a, b))


def plan(proxies: Sequence[Proxy], batch_for: Callable = lambda proxy: None) -> list[tuple]:
  """The names of ``proxies`` in groups to score together, in order of first appearance: a proxy
  joins the first earlier group whose members share one of its ``shares`` tags, match it in
  everything :func:`joint` checks, and get the same minibatch (``batch_for(proxy)``, compared by
  value); others form groups of one.
  """
  groups: list[list[Proxy]] = []
  for p in proxies:
    for g in groups:
      q = g[0]
      if (p.shares and set(p.shares) & set(q.shares) and _fingerprint(p) == _fingerprint(q)
          and _same_batch(batch_for(p), batch_for(q))):
        g.append(p)
        break
    else:
      groups.append([p])
  return [tuple(p.name for p in g) for g in groups]
