"""Closed-form NB101 parameter and FLOP counts (methods-spec §13.1.5) against NASLib's CSV."""

import pytest

from jaxnas.spaces.nb101 import counts as K
from jaxnas.spaces.nb101 import spec as S
from tests.spaces.nb101.common import INCEPTION, TRIVIAL, csv_rows, csv_spec


def test_quoted_values():
  assert K.params(INCEPTION) == 2_694_282
  assert K.params(TRIVIAL) == 882_570
  assert (K.params(csv_spec(0)), K.params(csv_spec(1))) == (1_861_666, 13_126_538)
  assert (K.flops(csv_spec(0)), K.flops(csv_spec(1))) == (282_511_616, 1_943_835_648)


def test_exact_on_all_csv_rows():
  for i, r in enumerate(csv_rows()):
    s = S.parse(r["matrix"], r["ops"])
    assert K.params(s) == round(float(r["naslib_params"]) * 1e6), i
    assert K.flops(s) == round(float(r["naslib_flops"]) * 1e6), i


def test_counts_prune_first_and_reject_invalid_specs():
  s = S.parse([[0, 0, 1], [0, 0, 0], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
  assert K.params(s) == K.params(TRIVIAL) and K.flops(s) == K.flops(TRIVIAL)
  with pytest.raises(Exception, match="does not reach"):
    K.params(S.parse([[0, 1, 0], [0, 0, 0], [0, 0, 0]], ["input", "maxpool3x3", "output"]))


def test_trivial_model_by_hand():
  # stem 3->128; per stack s: proj_out c_in -> C for 3 cells; head 512 -> 10
  def cbr(a, b, k=1):
    return k * k * a * b + 2 * b
  n = cbr(3, 128, 3) + 3 * cbr(128, 128) + cbr(128, 256) + 2 * cbr(256, 256) \
      + cbr(256, 512) + 2 * cbr(512, 512) + 5130
  assert K.params(TRIVIAL) == n
  # small configuration: stem 8, 2 stacks of 1 module, 8x8, 4 classes
  f = (27 * 8 + 24) * 64 + (64 + 24) * 64 + 4 * 8 * 16 + (8 * 16 + 48) * 16 + 16 * 4
  assert K.flops(TRIVIAL, stem_channels=8, num_stacks=2, modules_per_stack=1, num_classes=4,
                 resolution=8) == f
