#!/bin/bash
# Every registered proxy at full size (C=16, N=5, 32x32) on nine extreme NB201 cells: all-none,
# all-skip, all-1x1, all-3x3, all-pooling, three disconnected / skip-only cells and the best cell
# (6111). ntk_trace and tenas_ntk_cond (minutes per architecture at full size) run at C=3, N=1,
# TE-NAS' supernet size for kappa. Writes experiments/results/finite_extremes*.csv; the summary
# jaxnas prints counts non-finite scores per proxy. About 16 min on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
c() { echo "|$1~0|+|$2~0|$3~1|+|$4~0|$5~1|$6~2|"; }
A="$(c none none none none none none),$(c skip_connect skip_connect skip_connect skip_connect skip_connect skip_connect)"
A="$A,$(c nor_conv_1x1 nor_conv_1x1 nor_conv_1x1 nor_conv_1x1 nor_conv_1x1 nor_conv_1x1)"
A="$A,$(c nor_conv_3x3 nor_conv_3x3 nor_conv_3x3 nor_conv_3x3 nor_conv_3x3 nor_conv_3x3)"
A="$A,$(c avg_pool_3x3 avg_pool_3x3 avg_pool_3x3 avg_pool_3x3 avg_pool_3x3 avg_pool_3x3)"
A="$A,$(c nor_conv_3x3 none none none none none),$(c none nor_conv_3x3 none none nor_conv_3x3 none)"
A="$A,$(c none none none skip_connect none none),6111"
P=$(python -c "from jaxnas.proxies import list_proxies; print(','.join(p for p in list_proxies() if p not in ('ntk_trace', 'tenas_ntk_cond')))")
jaxnas score --proxies "$P" --archs "$A" --chunk-size 9 --no-progress --overwrite \
  --out experiments/results/finite_extremes.csv
jaxnas score --proxies ntk_trace,tenas_ntk_cond --config C=3,N=1 --archs "$A" --chunk-size 9 \
  --no-progress --overwrite --out experiments/results/finite_extremes_ntk_c3n1.csv
