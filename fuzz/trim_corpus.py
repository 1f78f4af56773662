#!/usr/bin/env python3
"""Caps a target's committed corpus at MAX_FILES, keeping the inputs that cover the most edges.

    cargo +nightly fuzz build <target>
    cargo +nightly fuzz cmin <target> -- -use_counters=0 -set_cover_merge=1
    python3 fuzz/trim_corpus.py <target> <max_files>
    python3 fuzz/make_seeds.py --rename

libFuzzer's merge (what `cargo fuzz cmin` runs) keeps every input that adds a feature, which
leaves long tails of inputs adding one edge each. This runs the target's merge once to learn
each input's edges (`-merge_control_file`), then picks greedily: the input adding the most
edges not yet covered, then the next, up to MAX_FILES; the rest are deleted. Files named
`crash-*` (fixed crashes) are always kept. It prints how many edges the kept inputs cover. See
docs/fuzzing.md, "Corpus policy".
"""

import pathlib
import subprocess
import sys
import tempfile

FUZZ = pathlib.Path(__file__).resolve().parent
TRIPLE = "x86_64-unknown-linux-gnu"


def edges_per_input(binary, corpus):
    with tempfile.TemporaryDirectory() as tmp:
        control = pathlib.Path(tmp) / "control"
        out = pathlib.Path(tmp) / "out"
        out.mkdir()
        subprocess.run(
            [str(binary), "-merge=1", "-use_counters=0", f"-merge_control_file={control}",
             str(out), str(corpus)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        lines = control.read_text().split("\n")
    count = int(lines[0])
    files = lines[2:2 + count]
    edges = {}
    for line in lines[2 + count:]:
        parts = line.split()
        if parts and parts[0] == "COV":
            edges[pathlib.Path(files[int(parts[1])])] = set(parts[2:])
    return edges


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    target, max_files = sys.argv[1], int(sys.argv[2])
    binary = FUZZ / "target" / TRIPLE / "release" / target
    corpus = FUZZ / "corpus" / target
    edges = edges_per_input(binary, corpus)
    total = set().union(*edges.values()) if edges else set()
    covered, keep = set(), set()
    # Fixed crashes are regression tests: always kept.
    for path in [p for p in edges if p.name.startswith("crash-")]:
        covered |= edges.pop(path)
        keep.add(path.resolve())
    while len(keep) < max_files:
        best = max(edges, key=lambda path: (len(edges[path] - covered), -len(path.name)),
                   default=None)
        if best is None or not edges[best] - covered:
            break
        covered |= edges.pop(best)
        keep.add(best.resolve())
    dropped = [p for p in corpus.iterdir() if p.is_file() and p.resolve() not in keep]
    for path in dropped:
        path.unlink()
    print(f"{target}: kept {len(keep)} inputs covering {len(covered)} of {len(total)} edges; "
          f"deleted {len(dropped)}")


if __name__ == "__main__":
    main()
