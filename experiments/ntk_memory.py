"""Peak memory of the exact empirical NTK of the full-size NB201 network on this CPU.

Computes the (64, 64) output-traced empirical NTK (neural-tangents, ``jacobian_contraction``) of the
discrete NB201 network (C=16, N=5, 32x32, eval-mode BN so samples are independent) for a batch of
64 bundled CIFAR-10 images, chunked over samples and outputs, and reports wall time and the peak
resident memory of the process (``ru_maxrss``). Writes ``experiments/results/ntk_memory.json``.

  python experiments/ntk_memory.py [--index 6111] [--sample-chunk 8] [--output-chunk 1]
"""

import argparse
import json
import os
import resource
import time

import jax
import numpy as np

from jaxnas import data, ntk, spaces
from jaxnas.spaces import nb201


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--index", type=int, default=6111)
  ap.add_argument("--batch", type=int, default=64)
  ap.add_argument("--sample-chunk", type=int, default=8)
  ap.add_argument("--output-chunk", type=int, default=1)
  ap.add_argument("--out", default="experiments/results/ntk_memory.json")
  a = ap.parse_args()
  arch = nb201.from_index(a.index)
  batch = data.minibatch("cifar10-bundled", a.batch, seed=0)
  module = nb201.NB201Net(bn="running", fixed_arch=tuple(int(o) for o in arch))
  net = spaces.Network(spaces.get_space("nb201"), module, None)
  v = jax.jit(net.init)(jax.random.key(0), batch.x)
  rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  t0 = time.perf_counter()
  theta = np.asarray(ntk.network_ntk(net, v, batch.x, sample_chunk=a.sample_chunk,
                                     output_chunk=a.output_chunk))
  sec = time.perf_counter() - t0
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  res = dict(index=a.index, batch=a.batch, C=16, N=5, sample_chunk=a.sample_chunk,
             output_chunk=a.output_chunk, seconds=sec, peak_rss_MiB=peak,
             rss_before_ntk_MiB=rss0, shape=list(theta.shape), finite=bool(np.isfinite(theta).all()),
             trace=float(np.trace(theta)),
             condition_number=float(np.asarray(ntk.condition_number(theta))),
             params=int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(v["params"]))))
  os.makedirs(os.path.dirname(a.out), exist_ok=True)
  with open(a.out, "w") as f:
    json.dump(res, f, indent=1)
  print(json.dumps(res, indent=1))


if __name__ == "__main__":
  main()
