"""The README's "adding a search space" walkthrough, done for real: a toy space written as one
subpackage (``<name>/space.py`` exporting ``SPACE``) is found without editing any list, and the
engine, the proxies that need nothing special, and the capability check work on it."""

import textwrap

import numpy as np
import pytest

from jaxnas import engine, spaces
from jaxnas.errors import JaxnasInputError
from tests.conftest import tiny_batch_of

TOY = textwrap.dedent('''
    """Toy space: two hidden layers whose widths (4 or 8) are the architecture."""
    import flax.linen as nn
    import jax.numpy as jnp
    import numpy as np
    import jax
    from jaxnas.spaces.base import SearchSpace

    WIDTHS = (4, 8)

    class ToyNet(nn.Module):
      num_classes: int = 10

      @nn.compact
      def __call__(self, x, arch):
        # parameter roles come from module names (jaxnas.spaces.params.kind_of): "*_conv" /
        # "conv*" kernels, "*_bn" BN, "classifier" the dense head
        h = x
        for i in range(2):
          w = jnp.asarray(WIDTHS)[arch[i]]
          h = nn.Conv(8, (1, 1), name=f"layer{i}_conv")(h)
          h = jnp.where(jnp.arange(8) < w, jax.nn.relu(h), 0.0)
        return nn.Dense(self.num_classes, name="classifier")(jnp.mean(h, axis=(1, 2)))

    def encode(a):
      a = np.asarray(a, np.int32).reshape(2)
      if not np.all((a >= 0) & (a < 2)):
        raise ValueError(a)
      return a

    def count_params(arch, num_classes=10, **_):
      return 0.0 * jnp.sum(jnp.asarray(arch)) + 1.0   # not the point of this test

    SPACE = SearchSpace(
        name="toy", arch_shape=(2,), num_archs=None, model=lambda **c: ToyNet(**c),
        encode=encode, decode=lambda a: ",".join(str(int(v)) for v in np.asarray(a)),
        sample=lambda key, n: jax.random.randint(key, (n, 2), 0, 2),
        active_mask=lambda params, arch: jax.tree_util.tree_map(lambda _: 1.0, params),
        count_params=count_params, count_flops=count_params)
''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
  pkg = tmp_path / "toy"
  pkg.mkdir()
  (pkg / "__init__.py").write_text("")
  (pkg / "space.py").write_text(TOY)
  monkeypatch.setattr(spaces, "__path__", list(spaces.__path__) + [str(tmp_path)])
  yield spaces.get_space("toy")


def test_a_new_subpackage_is_a_space(toy):
  assert "toy" in spaces.list_spaces() and toy.name == "toy"
  archs = np.asarray([[0, 1], [1, 1], [1, 0]], np.int32)
  batch = tiny_batch_of(8)
  out = engine.score(toy, archs, ["l2_norm", "grad_norm", "jacob_cov"], batch, chunk_size=3)
  for name, s in out.items():
    assert s.shape == (3,) and np.all(np.isfinite(s)), name
  with pytest.raises(JaxnasInputError, match="'nwot' needs 'relu_probe'.*'toy' space"):
    engine.score(toy, archs, ["nwot"], batch)
  with pytest.raises(JaxnasInputError, match="unknown search space 'toy2'"):
    spaces.get_space("toy2")
