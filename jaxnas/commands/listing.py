"""``jaxnas list``: the available spaces, proxies, search methods and datasets, one line each."""

NAME = "list"
HELP = "available spaces, proxies, search methods, datasets"


def add_arguments(parser):
  """``jaxnas list`` has no options: the subparser ``parser`` is left unchanged."""
  del parser


def run(args) -> int:
  """Runs ``jaxnas list`` (spaces, proxies, search methods, datasets); returns the exit code
  (1 when a space's definition is broken: it is listed with the error, the rest as usual)."""
  from jaxnas import data
  from jaxnas.proxies import get_pooled, get_proxy, list_pooled, list_proxies
  from jaxnas.errors import JaxnasInputError
  from jaxnas.spaces import get_space, list_spaces
  print("spaces:")
  broken = 0
  for s in list_spaces():
    try:
      sp = get_space(s)
    except (JaxnasInputError, ImportError, AttributeError, TypeError, ValueError) as e:
      broken += 1   # one misdefined space must not hide the others
      print(f"  {s:<16} BROKEN: {type(e).__name__}: {e}")
      continue
    n = f"{sp.num_archs} architectures" if sp.num_archs else "not enumerable (sampled)"
    truth = f"; truth: {', '.join(sp.metrics)}" if sp.metrics else ""
    print(f"  {s:<16} {n}{truth}")
  print("proxies:")
  for p in list_proxies():
    print(f"  {p:<16} {get_proxy(p).doc}")
  for p in list_pooled():
    print(f"  {p:<16} {get_pooled(p).doc}")
  try:
    from jaxnas.search import get_method, list_methods
  except ImportError:
    list_methods = None
  if list_methods is not None:
    print("search methods:")
    for m in list_methods():
      print(f"  {m:<16} {get_method(m).doc} [spaces: {', '.join(get_method(m).spaces)}]")
  print("datasets:")
  for d in data.DATASETS:
    print(f"  {d:<16} {data.describe(d)}")
  return 1 if broken else 0
