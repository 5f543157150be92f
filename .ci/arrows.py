#!/usr/bin/env python3
"""The stages import one way: no `use crate::X` from a stage to one above it, and no two files
that import each other. ARCHITECTURE.md lists the stages; this is its check, run by .ci/run.

    python3 .ci/arrows.py        (from the top of the repository; exit 1 on a wrong arrow)
"""
import pathlib
import re
import sys

# Lowest first. `config` (the limits) is shared by every stage; the binary (main, cli,
# live_cmd, man, term, web) sits on top of everything.
STAGES = ["capture", "decode", "flow", "transport", "rtmp", "pipeline", "sink", "run", "fuzzing"]
SHARED = {"config"}
BINARY = {"main", "cli", "live_cmd", "man", "term", "web"}

src = pathlib.Path(__file__).resolve().parent.parent / "src"
uses = {}  # file -> set of (stage, module path)
bad = []
for f in sorted(src.rglob("*.rs")):
    rel = f.relative_to(src)
    stage = rel.parts[0].removesuffix(".rs")
    text = f.read_text()
    # `use crate::a::b::{...}` and `use crate::{a, b}` (one level of braces is enough here).
    for m in re.finditer(r"^\s*use crate::(\{[^;]*\}|[A-Za-z_:]+)", text, re.M):
        targets = re.findall(r"[A-Za-z_]+(?:::[A-Za-z_]+)*", m.group(1))
        for t in targets:
            top = t.split("::")[0]
            uses.setdefault(rel, set()).add(t)
            if top in SHARED or top == stage or stage in BINARY or top not in STAGES:
                continue
            if stage in STAGES and STAGES.index(top) > STAGES.index(stage):
                bad.append(f"{rel}: {stage} imports {t}, a higher stage")

# No two files import each other: map `crate::a::b` to the file a/b.rs or a/b/mod.rs.
def file_of(path):
    parts = path.split("::")
    for n in range(len(parts), 0, -1):
        for cand in (pathlib.Path(*parts[:n]).with_suffix(".rs"), pathlib.Path(*parts[:n]) / "mod.rs"):
            if (src / cand).exists():
                return cand
    return None

edges = {(a, file_of(t)) for a, ts in uses.items() for t in ts}
for a, b in sorted(edges, key=str):
    if b is not None and a != b and (b, a) in edges:
        if str(a) < str(b):
            bad.append(f"{a} and {b} import each other")

for line in bad:
    print(line)
print(f"arrows: {len(bad)} wrong ({len(edges)} imports between files checked)")
sys.exit(1 if bad else 0)
