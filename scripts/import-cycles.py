#!/usr/bin/env python3
"""Fails when the modules of one of our crates import each other in a circle.

Cargo already keeps the crates in order (contract < domain < store < service
< bench). Inside a crate it allows anything, so this keeps the files in
order too: every `use crate::…`, `super::…` or inline `crate::…` path is an
edge from its file to the module file it names, and the graph of those edges
must have no cycle. A module may use its own submodules (that is what a
`mod.rs` is for); those edges are not counted.

Usage: scripts/import-cycles.py [workers]   (exit 1 and the circles, if any)
"""

import re
import sys
from pathlib import Path

COMMENT = re.compile(r"//.*?$", re.M)
USE = re.compile(r"\b(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.S)
INLINE = re.compile(r"(?<![\w:])((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")


def modules(src: Path, root: Path) -> dict:
    """Module path (tuple) -> file, for the crate whose root file is `root`."""
    found = {(): root}
    for file in sorted(src.rglob("*.rs")):
        if file == root or file.name in ("lib.rs", "main.rs") and file.parent == src:
            continue
        parts = list(file.relative_to(src).with_suffix("").parts)
        if parts[-1] == "mod":
            parts.pop()
        found[tuple(parts)] = file
    return found


def expand(tree: str) -> list:
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s+", "", tree)
    depth, start = 0, None
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                prefix, inner, rest = tree[:start], tree[start + 1 : i], tree[i + 1 :]
                items, level, piece = [], 0, ""
                for c in inner:
                    if c == "," and level == 0:
                        items.append(piece)
                        piece = ""
                        continue
                    level += c == "{"
                    level -= c == "}"
                    piece += c
                items.append(piece)
                out = []
                for item in filter(None, items):
                    for path in expand(item):
                        out.append(prefix + path if path != "self" else prefix.rstrip(":"))
                return [p + rest for p in out]
    return [re.sub(r"\bas\b.*$", "", tree.replace("::as", " as"))]


def edges(mods: dict) -> dict:
    by_file = {file: path for path, file in mods.items()}
    graph = {path: set() for path in mods}
    for path, file in mods.items():
        text = COMMENT.sub("", file.read_text(encoding="utf-8"))
        # Unit tests import whatever they test; only the module's code counts.
        text = re.split(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)[0]
        raw = []
        for tree in USE.findall(text):
            raw.extend(expand(tree))
        raw.extend(INLINE.findall(text))
        for name in raw:
            segments = [s for s in name.split("::") if s]
            if not segments or segments[0] not in ("crate", "super", "self"):
                continue
            if segments[0] == "crate":
                absolute, rest = [], segments[1:]
            else:
                absolute = list(path)
                rest = segments
                while rest and rest[0] in ("super", "self"):
                    if rest[0] == "super":
                        if not absolute:
                            break
                        absolute.pop()
                    rest = rest[1:]
            target = tuple(absolute)
            for segment in rest:
                if target + (segment,) in mods:
                    target = target + (segment,)
                else:
                    break
            if target == path or target[: len(path)] == path:
                continue  # itself, or one of its own submodules
            graph[path].add(target)
    return graph


def cycles(graph: dict) -> list:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main() -> int:
    workers = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent.parent / "workers")
    failed = False
    for manifest in sorted(workers.glob("*/Cargo.toml")):
        src = manifest.parent / "src"
        for root_name in ("lib.rs", "main.rs"):
            root = src / root_name
            if not root.exists():
                continue
            if root_name == "main.rs" and (src / "lib.rs").exists():
                continue  # the binary of a library crate: main.rs uses the library by name
            mods = modules(src, root)
            for component in cycles(edges(mods)):
                failed = True
                names = " <-> ".join(str(mods[m].relative_to(workers)) for m in component)
                print(f"import circle in {manifest.parent.name}: {names}")
    if failed:
        print("break each circle by moving what both sides need one floor down (ARCHITECTURE.md)")
        return 1
    print("no import circles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
