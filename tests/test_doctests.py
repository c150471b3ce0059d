"""Runs the docstring examples of the public modules where they are cheap."""

import doctest
import importlib

import pytest

MODULES = ["jaxnas.spaces.nb201.space", "jaxnas.benchmarks.metrics", "jaxnas.data"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
  mod = importlib.import_module(name)
  res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
  assert res.failed == 0
