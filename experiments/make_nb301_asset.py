"""Builds ``jaxnas/_assets/nb301.npz`` from ``../shared/data/nb301_naslib500.csv``: the 500 DARTS
genotypes as op-index encodings (``archs`` (500, 2, 8, 2) int8, jaxnas' DARTS encoding) and their
NAS-Bench-301 surrogate validation accuracy (``nb301_val`` (500,) float64), in file order.

  python experiments/make_nb301_asset.py [--csv PATH]
"""

from __future__ import annotations

import argparse
import csv
import os

import numpy as np

from jaxnas.spaces import get_space

HERE = os.path.dirname(os.path.abspath(__file__))
CSV = os.path.join(HERE, "..", "..", "shared", "data", "nb301_naslib500.csv")
OUT = os.path.join(HERE, "..", "jaxnas", "_assets", "nb301.npz")


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--csv", default=CSV)
  args = ap.parse_args(argv)
  space = get_space("darts")
  with open(args.csv, newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  archs = np.stack([space.encode(r["genotype"]) for r in rows]).astype(np.int8)
  val = np.array([float(r["val_accuracy"]) for r in rows], np.float64)
  np.savez_compressed(OUT, archs=archs, nb301_val=val)
  print(f"{len(rows)} genotypes -> {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
  main()
