"""XLA:CPU settings measured on the engine's real workloads (picks jaxnas' default ``XLA_FLAGS``).

Each setting runs in a fresh process, ``--repeats`` times in rotated order (the fastest round
counts: this machine is shared, and a lone sequential pass confounds settings with load) (XLA reads ``XLA_FLAGS`` once, at backend start): it scores
the same seeded NB201 architectures at full size (C=16, N=5, 32x32, batch 64 unless the proxy
fixes its own) with each proxy through :func:`jaxnas.engine.score`, once to compile and once
timed (steady state), and returns the scores. Reported per (setting, proxy): seconds per
architecture, the ratio to the default setting in the same run, and the largest relative
difference of the scores to the default's (a setting that changes scores beyond rounding is not
a candidate). Settings:

* ``default``: XLA's own (what jaxnas gets with ``JAXNAS_XLA_FLAGS=none``);
* ``xnnpack``: ``--xla_cpu_use_xnnpack=true`` (XNNPACK for dots and convolutions);
* ``onednn``: ``--xla_cpu_use_onednn=true``;
* ``xnn_greedy`` / ``xnn_greedy_slinky``: XNNPACK plus the graph fusion modes
  ``--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY[_SLINKY]``.

Results go to ``--out`` (JSON) and a table on stdout.

  python experiments/xla_flags.py --proxies grad_norm,nwot,synflow --archs 6
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

SETTINGS = {
    "default": "",
    "xnnpack": "--xla_cpu_use_xnnpack=true",
    "onednn": "--xla_cpu_use_onednn=true",
    "xnn_greedy": "--xla_cpu_use_xnnpack=true "
                  "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "xnn_greedy_slinky": "--xla_cpu_use_xnnpack=true --xla_cpu_experimental_xnn_graph_fusion_mode"
                         "=XNN_GRAPH_FUSION_MODE_GREEDY_SLINKY",
}


def child(proxies: list[str], n: int, seed: int) -> dict:
  import jax  # noqa: F401  (after XLA_FLAGS is set by the parent)
  from jaxnas import data, engine
  from jaxnas.proxies import get_proxy
  from jaxnas.spaces import nb201
  rng = np.random.default_rng(seed)
  idx = np.sort(rng.choice(15625, 2 * n, replace=False))
  warm, timed = nb201.from_index(idx[:n]), nb201.from_index(idx[n:])
  out = {}
  for name in proxies:
    bs = get_proxy(name).batch_size or 64
    batch = data.minibatch("cifar10-bundled", bs, seed=seed)
    t0 = time.perf_counter()
    engine.score("nb201", warm, [name], batch, seed=seed, chunk_size=n)
    t1 = time.perf_counter()
    s = engine.score("nb201", timed, [name], batch, seed=seed, chunk_size=n)[name]
    t2 = time.perf_counter()
    out[name] = {"first_s": t1 - t0, "per_arch_s": (t2 - t1) / n,
                 "scores": [float(v) for v in np.asarray(s)]}
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--proxies", default="grad_norm,nwot,synflow")
  p.add_argument("--archs", type=int, default=6, help="architectures timed per proxy")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--settings", default=",".join(SETTINGS))
  p.add_argument("--repeats", type=int, default=2, help="rounds over the settings, in rotated "
                 "order; the fastest round of each setting counts (the machine is shared)")
  p.add_argument("--out", default="experiments/results/xla_flags.json")
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  a = p.parse_args(argv)
  proxies = [s for s in a.proxies.split(",") if s]
  if a.child:
    print("RESULT " + json.dumps(child(proxies, a.archs, a.seed)))
    return
  settings = [s for s in a.settings.split(",") if s]
  bad = [s for s in settings if s not in SETTINGS]
  if bad:
    raise SystemExit(f"unknown setting(s) {bad}; allowed: {', '.join(SETTINGS)}")
  results: dict = {}
  for rnd in range(a.repeats):
    order = settings[rnd % len(settings):] + settings[:rnd % len(settings)]
    for name in order:
      env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
      env["JAXNAS_XLA_FLAGS"] = "none"  # jaxnas adds nothing: exactly this setting's flags
      if SETTINGS[name]:
        env["XLA_FLAGS"] = SETTINGS[name]
      t0 = time.perf_counter()
      r = subprocess.run([sys.executable, __file__, "--child", "--proxies", a.proxies,
                          "--archs", str(a.archs), "--seed", str(a.seed)],
                         capture_output=True, text=True, env=env)
      line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
      if r.returncode or not line:
        results[name] = {"error": (r.stderr.strip().splitlines() or ["?"])[-1][:300]}
        print(f"{name}: failed: {results[name]['error']}", flush=True)
        continue
      got = json.loads(line[0][len("RESULT "):])
      prev = results.get(name, {})
      for proxy, rec in got.items():  # keep the fastest round; scores must not change
        rec["rounds_s"] = prev.get(proxy, {}).get("rounds_s", []) + [rec["per_arch_s"]]
        if proxy in prev and prev[proxy]["scores"] != rec["scores"]:
          rec["nondeterministic"] = True
        if proxy in prev and prev[proxy]["per_arch_s"] < rec["per_arch_s"]:
          rec["per_arch_s"], rec["first_s"] = prev[proxy]["per_arch_s"], prev[proxy]["first_s"]
      results[name] = got
      print(f"round {rnd}: {name} done in {time.perf_counter() - t0:.0f} s", flush=True)
  import jax
  base = results.get("default", {})
  rows = []
  for name, res in results.items():
    for proxy in proxies:
      if "error" in res or proxy not in res:
        continue
      r = res[proxy]
      row = {"setting": name, "flags": SETTINGS[name], "proxy": proxy,
             "per_arch_s": r["per_arch_s"], "first_s": r["first_s"], "rounds_s": r["rounds_s"]}
      if proxy in base:
        b = np.array(base[proxy]["scores"])
        s = np.array(r["scores"])
        row["ratio_to_default"] = r["per_arch_s"] / base[proxy]["per_arch_s"]
        row["max_rel_diff_to_default"] = float(np.max(np.abs(s - b) / np.maximum(np.abs(b),
                                                                                  1e-30)))
      rows.append(row)
  print("\n| setting | proxy | s/arch | ratio to default | first call (s) | max rel. diff |")
  print("|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['setting']} | {r['proxy']} | {r['per_arch_s']:.3f} | "
          f"{r.get('ratio_to_default', float('nan')):.2f} | {r['first_s']:.1f} | "
          f"{r.get('max_rel_diff_to_default', float('nan')):.1e} |")
  os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
  with open(a.out, "w") as f:
    json.dump({"jax": jax.__version__, "archs": a.archs, "seed": a.seed, "repeats": a.repeats,
               "rows": rows,
               "errors": {k: v["error"] for k, v in results.items() if "error" in v}}, f, indent=1)


if __name__ == "__main__":
  main()
