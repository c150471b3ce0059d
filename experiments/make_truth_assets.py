"""Builds the bundled truth tables of the spaces without a global index, from the shared data:

* ``jaxnas/_assets/nb301.npz`` from ``nb301_naslib500.csv``: the 500 DARTS genotypes as op-index
  encodings (``archs`` (500, 2, 8, 2) int8) and their NAS-Bench-301 surrogate validation accuracy
  (``nb301_val`` (500,) float64), in file order;
* ``jaxnas/_assets/nb101.npz`` from ``nb101_naslib300.csv``: the 300 rows' pruned NB101 encodings
  (``archs`` (300, 56) int8, ``jaxnas.spaces.nb101.space``) and ``nb101_val`` (300,) float64.

  python experiments/make_truth_assets.py [--shared DIR]
"""

from __future__ import annotations

import argparse
import csv
import os

import numpy as np

from jaxnas.spaces import get_space

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data")
ASSETS = os.path.join(HERE, "..", "jaxnas", "_assets")
#: asset -> (shared CSV, space, columns giving the architecture, truth column, truth name, dtype)
TABLES = {"nb301.npz": ("nb301_naslib500.csv", "darts", ("genotype",), "nb301_val"),
          "nb101.npz": ("nb101_naslib300.csv", "nb101", ("matrix", "ops"), "nb101_val")}


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--shared", default=SHARED)
  args = ap.parse_args(argv)
  for asset, (name, space_name, cols, truth) in TABLES.items():
    space = get_space(space_name)
    with open(os.path.join(args.shared, name), newline="", encoding="utf-8") as f:
      rows = list(csv.DictReader(f))
    archs = np.stack([space.encode(r[cols[0]] if len(cols) == 1 else tuple(r[c] for c in cols))
                      for r in rows]).astype(np.int8)
    val = np.array([float(r["val_accuracy"]) for r in rows], np.float64)
    out = os.path.join(ASSETS, asset)
    np.savez_compressed(out, archs=archs, **{truth: val})
    print(f"{len(rows)} architectures -> {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
  main()
