"""Training sanity check: the networks the search spaces build can actually be trained.

Trains a given NAS-Bench-201 architecture (the discrete build, ``NB201Net(fixed_arch=...)``) and a
given DARTS genotype (the evaluation network ``DartsEvalNet``, small C/L for CPU) with
:func:`jaxnas.train.train` on the bundled CIFAR-10 sample (512 training / 256 test images), and
records the training loss curve and the test accuracy (chance: 10 %). Figures go to
``experiments/results/train_sanity.json`` (``--out``).

CPU run (the defaults; ~10-20 min on 2 cores)::

  python experiments/train_sanity.py

Full DARTS evaluation protocol on a GPU (methods-spec §1.2: DARTS_V2 at C=36, L=20 on the whole
CIFAR-10 training set, 600 epochs, batch 96, SGD lr 0.025 cosine to 0, momentum 0.9, weight decay
3e-4, Cutout 16, auxiliary weight 0.4, drop-path 0.2, gradient clip 5; the test set is evaluated
every 10 epochs; DARTS reports 2.76 +- 0.09 % test error and 3.3 M parameters). CIFAR-10 comes from
tensorflow-datasets (prepare it once with ``tfds build cifar10 --data_dir DIR``); on a GPU the
depthwise convolutions use ``lax.conv_general_dilated`` (``conv_impl='auto'``)::

  pip install -U "jax[cuda12_pip]==0.4.23" -f https://storage.googleapis.com/jax-releases/jax_cuda_releases.html
  python experiments/train_sanity.py --space darts --genotype DARTS_V2 --dataset cifar10 \\
      --data-dir DIR --C 36 --L 20 --epochs 600 --batch-size 96 --lr 0.025 --lr-min 0 \\
      --momentum 0.9 --weight-decay 3e-4 --grad-clip 5 --cutout 16 --auxiliary-weight 0.4 \\
      --drop-path 0.2 --eval-every-epochs 10 --out experiments/results/train_sanity_darts_full.json

(50,000 // 96 = 520 steps per epoch, 312,000 steps; the auxiliary head is built when
``--auxiliary-weight`` > 0 and, as in DARTS, excluded from the reported parameter count.)
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxnas import data, train
from jaxnas.spaces import darts, nb201

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
#: NB201 index 6111: the best CIFAR-10 architecture of the benchmark (94.37 % test accuracy)
NB201_DEFAULT = 6111


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--space", choices=("both", "nb201", "darts"), default="both")
  p.add_argument("--nb201-arch", default=str(NB201_DEFAULT),
                 help="NB201 architecture: benchmark index or arch string")
  p.add_argument("--nb201-C", type=int, default=16)
  p.add_argument("--nb201-N", type=int, default=2)
  p.add_argument("--genotype", default="DARTS_V2", help="DARTS genotype (name, JSON, Genotype(...))")
  p.add_argument("--C", type=int, default=8, help="DARTS evaluation network channels")
  p.add_argument("--L", type=int, default=5, help="DARTS evaluation network cells")
  p.add_argument("--dataset", default="cifar10-bundled", choices=("cifar10-bundled", "cifar10"))
  p.add_argument("--data-dir", default=None, help="tensorflow-datasets directory (cifar10)")
  p.add_argument("--epochs", type=int, default=40)
  p.add_argument("--batch-size", type=int, default=64)
  p.add_argument("--lr", type=float, default=0.05)
  p.add_argument("--lr-min", type=float, default=0.0)
  p.add_argument("--momentum", type=float, default=0.9)
  p.add_argument("--weight-decay", type=float, default=3e-4)
  p.add_argument("--grad-clip", type=float, default=5.0)
  p.add_argument("--cutout", type=int, default=0)
  p.add_argument("--auxiliary-weight", type=float, default=0.0)
  p.add_argument("--drop-path", type=float, default=0.0)
  p.add_argument("--eval-every-epochs", type=int, default=10)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default=str(RESULTS / "train_sanity.json"))
  return p.parse_args(argv)


def _run(name, module, variables_key, tr, te, args, extra):
  """Initialises and trains ``module``; returns the record for the results file."""
  x0 = jnp.zeros((1,) + tr[0].shape[1:3] + (3,), jnp.float32)
  variables = jax.jit(module.init)(variables_key, x0)
  n_params = sum(int(np.prod(p.shape)) for k, p in jax.tree_util.tree_flatten_with_path(
      variables["params"])[0] if "auxiliary" not in jax.tree_util.keystr(k))
  spe = len(tr[0]) // args.batch_size
  steps = args.epochs * spe
  print(f"[{name}] {extra} params={n_params / 1e6:.4f}M steps={steps} ({spe}/epoch)", flush=True)
  t0 = time.time()
  _, history = train.train(
      train.flax_apply(module), variables, tr, steps, jax.random.key(args.seed + 1),
      batch_size=args.batch_size, lr=args.lr, lr_min=args.lr_min, momentum=args.momentum,
      weight_decay=args.weight_decay, grad_clip=args.grad_clip, epochs=args.epochs,
      cutout=args.cutout, aux_weight=args.auxiliary_weight, drop_path=args.drop_path,
      eval_data=te, eval_every=args.eval_every_epochs * spe,
      log_fn=lambda r: print(f"[{name}] " + " ".join(
          f"{k}={v:.4g}" for k, v in r.items()), flush=True))
  wall = time.time() - t0
  final = history[-1]
  rec = dict(extra, params=n_params, steps=steps, steps_per_epoch=spe, wall_s=round(wall, 1),
             first_epoch_loss=history[0]["loss"], last_epoch_loss=final["loss"],
             final_train_accuracy=final["accuracy"], test_accuracy=final["test_accuracy"],
             test_loss=final["test_loss"], history=history)
  print(f"[{name}] loss {rec['first_epoch_loss']:.3f} -> {rec['last_epoch_loss']:.3f}, "
        f"test accuracy {100 * rec['test_accuracy']:.1f}% ({len(te[0])} images), "
        f"{wall:.0f}s", flush=True)
  return rec


def main(argv=None):
  args = parse_args(argv)
  tr = data.load_images(args.dataset, "train", args.data_dir)
  te = data.load_images(args.dataset, "test", args.data_dir)
  out = dict(config=vars(args), backend=jax.default_backend(), train_images=len(tr[0]),
             test_images=len(te[0]), chance=0.1, runs={})
  key = jax.random.key(args.seed)
  if args.space in ("both", "nb201"):
    arch = nb201.encode(args.nb201_arch)
    net = nb201.model(C=args.nb201_C, N=args.nb201_N, fixed_arch=tuple(arch))
    out["runs"]["nb201"] = _run("nb201", net, jax.random.fold_in(key, 0), tr, te, args, dict(
        arch=nb201.decode(arch), index=nb201.to_index(arch), C=args.nb201_C, N=args.nb201_N))
  if args.space in ("both", "darts"):
    arch = darts.encode(args.genotype)
    net = darts.model(fixed_arch=arch, C=args.C, L=args.L, auxiliary=args.auxiliary_weight > 0)
    out["runs"]["darts"] = _run("darts", net, jax.random.fold_in(key, 1), tr, te, args, dict(
        genotype=json.loads(darts.decode(arch)), C=args.C, L=args.L,
        auxiliary=args.auxiliary_weight > 0))
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(out, f, indent=1)
  print(f"wrote {args.out}")
  return out


if __name__ == "__main__":
  main()
