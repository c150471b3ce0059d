"""``jaxnas correlate``: Spearman / Kendall of a scores CSV against benchmark accuracy."""

from jaxnas.commands import _io
from jaxnas.errors import JaxnasInputError

NAME = "correlate"
HELP = "rank correlation of a scores CSV with benchmark accuracy"


def add_arguments(s):
  """Adds the ``jaxnas correlate`` options to the subparser ``s``."""
  s.add_argument("--scores", required=True)
  s.add_argument("--truth", default="cifar10_test200",
                 help="comma-separated benchmark metrics: NB201's (e.g. cifar10_test200, "
                      "cifar100_test200), nb301_val (DARTS, 500 genotypes) or nb101_val "
                      "(NB101, 300 rows); the last two looked up by arch_str")
  s.add_argument("--plot", default=None, help="save scatter plots (PNG)")
  s.add_argument("--interval", action="store_true",
                 help="add each Spearman's 95%% percentile-bootstrap interval over the "
                      "architectures (2,000 resamples, seed 0; ~10 s per proxy and truth on all "
                      "15,625 of NB201)")
  s.add_argument("--pooled", default=None,
                 help="comma-separated pool-relative scores to add (default: every one whose "
                      "components the file holds; 'none' for none); each ranks over the "
                      "architectures all its components scored")


def run(args) -> int:
  """Runs ``jaxnas correlate`` (prints the correlation table); returns the exit code."""
  from jaxnas import benchmarks
  truths = _io.split(args.truth)
  owners = benchmarks.truths()
  allowed = ", ".join(owners)
  if not truths:
    raise JaxnasInputError(f"--truth is empty; allowed: {allowed}")
  for t in truths:
    if truths.count(t) > 1:
      raise JaxnasInputError(f"--truth names {t!r} twice; give each metric once")
    if t not in owners:
      raise JaxnasInputError(f"unknown truth metric {t!r}; allowed: {allowed}")
  if len({owners[t] for t in truths}) > 1:
    raise JaxnasInputError(f"--truth mixes spaces ({', '.join(truths)}); give metrics of one "
                           "space")
  if args.plot:
    _io.check_output_path(args.plot, "--plot")
  from jaxnas.proxies import get_pooled, with_pooled
  pooled = None
  if args.pooled is not None:
    pooled = [] if args.pooled.strip() == "none" else _io.split(args.pooled)
    for p in pooled:
      get_pooled(p)
  arch_strs: dict = {}
  scores = with_pooled(_io.read_scores(args.scores, arch_strs), pooled)
  print(_io.format_table(_io.correlation_table(scores, truths, arch_strs, args.interval)))
  if args.plot:
    _io.scatter_plot(scores, truths[0], args.plot, arch_strs)
    print(f"plot -> {args.plot}")
  return 0
