#!/usr/bin/env bash
# A capture with about 5% of its frames missing, for bench/timing-run.sh: netns-loss (1%
# deleted) with 4% more of its frames after the first 60 deleted (fixed seed), as
# samples/make-hard-samples.sh deletes them. Truth: samples/netns-loss/truth.
#   bench/make-loss5.sh /tmp/loss5.pcap [SEED] [IN]     (default 5, samples/netns-loss)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?output pcap}
seed=${2:-5}
in=${3:-samples/netns-loss/capture.pcap}
n=$(tcpdump -r "$in" -n 2>/dev/null | wc -l)
drop=$(python3 -c "import random; r=random.Random($seed); n=$n; print(' '.join(str(x) for x in sorted(r.sample(range(61, n+1), n*4//100))))")
editcap "$in" "$out" $drop
