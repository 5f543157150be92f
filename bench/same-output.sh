#!/usr/bin/env bash
# Do two builds of rtmpsniff give the same output, byte for byte? For refactors that must not
# change behaviour.
#
#   bench/same-output.sh OLD_BINARY NEW_BINARY [MUTATIONS]
#   EXCLUDE='rtmpt-|rtmps-' bench/same-output.sh ...   (leave out captures whose path matches)
#
# Runs both binaries on every capture under samples/ and ../shared/captures, and on MUTATIONS
# (default 300) damaged variants of them (bit flips, overwritten, copied and deleted blocks,
# cuts; deterministic: the same variants every run), each with several command lines (`read`,
# `read -v --any-port`, `read --direction publish`, `list`, `list --json`). For each, standard
# output, standard error, the exit status and every file written (FLVs, report.json) must be
# identical, but for the report's wall-clock times and program path. Prints one line per
# difference and a count; exit status 1 when any differ.
set -euo pipefail

OLD=$(realpath "$1")
NEW=$(realpath "$2")
MUTATIONS=${3:-300}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d /tmp/rtmpsniff-same.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

inputs=()
while IFS= read -r f; do inputs+=("$f"); done < <(
    find "$ROOT/samples" "$ROOT/../shared/captures" -name '*.pcap' -o -name '*.pcapng' 2>/dev/null |
        grep -v -E "${EXCLUDE:-^$}" | sort)

mkdir -p "$WORK/mut"
python3 - "$WORK/mut" "$MUTATIONS" "${inputs[@]}" <<'EOF'
import random, sys
out, n, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rng = random.Random(20261201)
datas = [open(f, 'rb').read() for f in files]
for i in range(n):
    k = i % len(datas)
    d = bytearray(datas[k])
    kind = rng.randrange(5)
    for _ in range(rng.randrange(1, 8)):
        if len(d) < 64:
            break
        p = rng.randrange(24, len(d))
        if kind == 0:
            d[p] ^= 1 << rng.randrange(8)
        elif kind == 1:
            d[p:p + 16] = bytes(rng.randrange(256) for _ in range(16))
        elif kind == 2:
            q = rng.randrange(24, len(d))
            d[p:p] = d[q:q + rng.randrange(1, 3000)]
        elif kind == 3:
            del d[p:p + rng.randrange(1, 3000)]
        else:
            del d[p:]
            break
    ext = 'pcapng' if files[k].endswith('pcapng') else 'pcap'
    open(f'{out}/m{i:04}.{ext}', 'wb').write(bytes(d))
EOF
while IFS= read -r f; do inputs+=("$f"); done < <(find "$WORK/mut" -type f | sort)

# One run: its outputs into $3 (a folder that does not exist yet).
run() {
    local bin=$1 input=$2 dir=$3
    shift 3
    mkdir -p "$dir"
    (cd "$dir" && timeout 60 "$bin" "$@" "$input" >stdout 2>stderr; echo $? >status) || true
    unrun "$dir"
}

# What differs from run to run whatever the build, left out of the reports in $1 before they
# are compared: the wall-clock start and end and the program's path (report.json's
# schema_version 2 has them; a report without them is left as it is; report.html says them in
# its heading, and ffmpeg's messages quoted in it name addresses).
unrun() {
    python3 - "$1" <<'UNRUN'
import json, pathlib, re, sys
for f in pathlib.Path(sys.argv[1]).rglob('*'):
    if f.is_file() and f.name == 'report.html':
        t = f.read_text(errors='replace')
        t = re.sub(r'run \S+Z &middot; <code>\S+', 'run &middot; <code>rtmpsniff', t, count=1)
        t = re.sub(r' @ 0x[0-9a-f]+\]', ' @ 0x]', t)
        f.write_text(t)
        continue
    if not f.is_file() or not (f.name == 'stdout' or (f.name.startswith('report') and f.suffix == '.json')):
        continue
    try:
        r = json.loads(f.read_bytes())
    except ValueError:
        continue
    if not isinstance(r, dict) or 'schema_version' not in r:
        continue
    for k in ('start_time', 'start_time_utc', 'end_time', 'end_time_utc'):
        r.pop(k, None)
    if r.get('command_line'):
        r['command_line'][0] = 'rtmpsniff'
    f.write_text(json.dumps(r, indent=2))
UNRUN
}

diffs=0
runs=0
for input in "${inputs[@]}"; do
    for args in "read -o out -q" "read -o out -v --any-port" "read -o out --direction publish" \
        "list" "list --json"; do
        runs=$((runs + 1))
        rm -rf "$WORK/a" "$WORK/b"
        # shellcheck disable=SC2086
        run "$OLD" "$input" "$WORK/a" $args
        # shellcheck disable=SC2086
        run "$NEW" "$input" "$WORK/b" $args
        if ! diff -r -q "$WORK/a" "$WORK/b" >/dev/null; then
            diffs=$((diffs + 1))
            echo "DIFFERENT: $args $input"
            { diff -r "$WORK/a" "$WORK/b" || true; } | head -5 | sed "s/^/    /"
        fi
    done
done
echo "$runs runs on ${#inputs[@]} inputs: $diffs different"
[ "$diffs" = 0 ]
