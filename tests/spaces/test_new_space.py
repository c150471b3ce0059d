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
    from jaxnas.errors import JaxnasInputError
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
        raise JaxnasInputError(f"toy architecture {a.tolist()}: each entry must be 0 or 1")
      return a

    def count_params(arch, num_classes=10, **_):
      return 0.0 * jnp.sum(jnp.asarray(arch)) + 1.0   # not the point of this test

    SPACE = SearchSpace(
        name="toy", arch_shape=(2,), model=lambda **c: ToyNet(**c),
        encode=encode, decode=lambda a: ",".join(str(int(v)) for v in np.asarray(a)),
        sample=lambda key, n: jax.random.randint(key, (n, 2), 0, 2),
        active_mask=lambda params, arch: jax.tree_util.tree_map(lambda _: 1.0, params),
        count_params=count_params, count_flops=count_params)
''')


def _install(tmp_path, monkeypatch, name="toy", text=TOY, init=True):
  pkg = tmp_path / name
  pkg.mkdir()
  if init:
    (pkg / "__init__.py").write_text("")
  (pkg / "space.py").write_text(text.replace('name="toy"', f'name="{name}"'))
  if str(tmp_path) not in spaces.__path__:
    monkeypatch.setattr(spaces, "__path__", list(spaces.__path__) + [str(tmp_path)])


@pytest.fixture
def toy(tmp_path, monkeypatch):
  _install(tmp_path, monkeypatch)
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


def test_a_folder_without_init_is_a_space_too(tmp_path, monkeypatch):
  _install(tmp_path, monkeypatch, name="toyns", init=False)
  assert "toyns" in spaces.list_spaces()
  assert spaces.get_space("toyns").name == "toyns"


@pytest.mark.parametrize("case, edit, match", [
    (0, ("arch_shape=(2,),", "arch_shape=(2,), num_archs=4,"), "num_archs=4.*needs to_index and from_index"),
    (1, ("num_classes: int = 10", "width: int = 8"), "its module ToyNet has no num_classes field"),
    (2, ("model=lambda **c: ToyNet(**c),", "model=lambda depth, **c: ToyNet(**c),"),
     "model\\(\\) must build the standard network without arguments"),
    (3, ("arch_shape=(2,),", "arch_shape=(2,), unrolls=True,"), "unrolls=True needs an `unrolled` field"),
    (4, ("arch_shape=(2,),", "arch_shape=(2,), block_shapes=lambda s, **c: ((s, s),),"),
     "block_shapes needs `block_input` and `tap` fields on ToyNet"),
    (5, ("arch_shape=(2,),", "arch_shape=(2,), gained_fields={'init': 'old'},"),
     "gained_fields=\\{'init': 'old'\\} names fields its module ToyNet lacks"),
])
def test_a_misdefined_space_is_named_with_the_broken_field(tmp_path, monkeypatch, case, edit,
                                                          match):
  name = f"toybad{case}"   # a module name per case: Python caches imported modules
  _install(tmp_path, monkeypatch, name=name, text=TOY.replace(*edit))
  with pytest.raises(JaxnasInputError, match=f"search space '{name}' is misdefined: " + match):
    spaces.get_space(name)


def test_list_names_a_broken_space_and_lists_the_others(tmp_path, monkeypatch, capsys):
  from jaxnas.commands import listing
  _install(tmp_path, monkeypatch, name="toylist", text=TOY.replace("num_classes: int = 10", "w: int = 1"))
  assert listing.run(None) == 1
  out = capsys.readouterr().out
  assert "toylist          BROKEN: JaxnasInputError: search space 'toylist' is misdefined" in out
  assert "nb201" in out and "synflow" in out


def test_searches_name_what_runs_on_the_space_before_scoring(toy):
  from jaxnas import search
  with pytest.raises(JaxnasInputError, match="'zen' needs .*'toy' space"):
    search.search("cascade", toy, seed=0, stages="l2_norm:2,zen:1", n=4)
  with pytest.raises(JaxnasInputError, match="e.g. --proxy synflow.*proxies that run on 'toy'"):
    search.search("random", toy, seed=0, n=4)
