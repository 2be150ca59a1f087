#!/usr/bin/env python3
"""No file circles inside a crate: the modules of each crate under crates/*/src must import one
another as a tree apart from the crate root (lib.rs / main.rs).

An edge A -> B is a path in A's source (a `use` or an inline path, tests included, comments and
strings not) that names an item of module B: `crate::…`, `super::…` or `self::…`, followed through
the re-exports (`pub use`, `pub(crate) use`, …) of the module it lands in. Items defined in the
crate root are not edges, and neither are a folder's re-exports in its mod.rs. Any circle
(a strongly connected set of more than one module) is printed with one cycle through it, and the
exit status is 1.

Usage: .ci/module_graph.py [CRATE_DIR …]   (default: every crates/*/ of the repository)
Needs Python 3.11; reads files only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def strip_comments_and_strings(text: str) -> str:
    """Source with comments removed and string/char literals blanked (braces inside them would
    confuse the nesting count; paths inside them are not imports)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif (m := re.compile(r'b?r(#*)"').match(text, i)) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find('"' + m.group(1), m.end())
            i = n if end < 0 else end + 1 + len(m.group(1))
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and (m := re.compile(r"'(\\.[^']*|[^\\'])'").match(text, i)):
            i = m.end()
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use_tree(tree: str) -> list[tuple[list[str], str]]:
    """`a::{b, c::{d as e}}` -> [(['a','b'], 'b'), (['a','c','d'], 'e')]: full path and bound name."""
    tree = re.sub(r"\s+", "", tree)

    def parse(s: str, prefix: list[str]) -> list[tuple[list[str], str]]:
        items, depth, start = [], 0, 0
        parts = []
        for k, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:k])
                start = k + 1
        parts.append(s[start:])
        for part in filter(None, parts):
            if "{" in part:
                head, _, rest = part.partition("{")
                segs = [p for p in head.split("::") if p]
                items += parse(rest[: rest.rfind("}")], prefix + segs)
            else:
                name, alias = (part.split("as") + [None])[:2] if re.search(r"\bas\b", part) else (part, None)
                segs = [p for p in name.split("::") if p]
                if segs == ["self"]:
                    full = prefix
                else:
                    full = prefix + segs
                if full:
                    items.append((full, alias or full[-1]))
        return items

    return parse(tree, [])


class Module:
    def __init__(self, crate: str, path: tuple[str, ...], file: Path):
        self.crate, self.path, self.file = crate, path, file
        self.reexports: dict[str, list[str]] = {}  # name -> absolute path (visible re-exports)
        self.paths: list[tuple[list[str], bool]] = []  # (absolute path, is it a re-export statement)
        self.defines: set[str] = set()

    @property
    def name(self) -> str:
        return "::".join(self.path) or "(root)"


def module_path(src: Path, file: Path) -> tuple[str, ...]:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts.pop()
    return tuple(parts)


PATH_RE = re.compile(r"(?<![\w:])((?:crate|super|self)(?:::(?:r#)?\w+)+)")
USE_RE = re.compile(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);")
INLINE_MOD_RE = re.compile(r"\bmod\s+(\w+)\s*\{")
DEF_RE = re.compile(r"\b(?:fn|struct|enum|trait|type|const|static|union|macro_rules!)\s+(\w+)")


def absolute(segs: list[str], here: tuple[str, ...]) -> list[str] | None:
    """A path as written in module `here` (which may be inside inline modules) made absolute."""
    if segs[0] == "crate":
        return segs[1:]
    base = list(here)
    i = 0
    while i < len(segs) and segs[i] in ("super", "self"):
        if segs[i] == "super":
            if not base:
                return None
            base.pop()
        i += 1
    return base + segs[i:]


def read_module(mod: Module) -> None:
    text = strip_comments_and_strings(mod.file.read_text(encoding="utf-8"))
    # Where inline modules (`mod tests { … }`) open and close, to make `super::` inside them right.
    inline: list[tuple[int, int, str]] = []  # (start, end, name)
    for m in INLINE_MOD_RE.finditer(text):
        depth, k = 1, m.end()
        while k < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[k], 0)
            k += 1
        inline.append((m.start(), k, m.group(1)))

    def scope_at(pos: int) -> tuple[str, ...]:
        extra = [name for (s, e, name) in sorted(inline) if s <= pos < e]
        return mod.path + tuple(extra)

    # Child modules, whose names start paths without `self::` (2018 edition).
    children = set(re.findall(r"\bmod\s+(\w+)\s*;", text))
    use_spans = []
    for m in USE_RE.finditer(text):
        use_spans.append((m.start(), m.end()))
        here = scope_at(m.start())
        in_inline = len(here) > len(mod.path)
        for segs, bound in expand_use_tree(m.group(2)):
            if segs[0] in children and not in_inline:
                segs = ["self"] + segs
            if segs[0] not in ("crate", "super", "self"):
                continue
            full = absolute(segs, here)
            if full is None:
                continue
            public = bool(m.group(1)) and not in_inline
            if public:
                mod.reexports[bound] = full
            mod.paths.append((full, public))
    for m in PATH_RE.finditer(text):
        if any(s <= m.start() < e for s, e in use_spans):
            continue
        segs = [s.removeprefix("r#") for s in m.group(1).split("::")]
        full = absolute(segs, scope_at(m.start()))
        if full is not None:
            mod.paths.append((full, False))
    # Paths that start with a child module's name (`auth::check(…)`).
    if children:
        child_re = re.compile(r"(?<![\w:])((?:%s)(?:::(?:r#)?\w+)+)" % "|".join(sorted(children)))
        for m in child_re.finditer(text):
            if any(s <= m.start() < e for s, e in use_spans):
                continue
            segs = [s.removeprefix("r#") for s in m.group(1).split("::")]
            mod.paths.append((list(mod.path) + segs, False))
    mod.defines = set(DEF_RE.findall(text))


def resolve(modules: dict[tuple[str, ...], Module], full: list[str], seen: int = 0) -> tuple[str, ...] | None:
    """The module that defines the item `full` names (or the module it names)."""
    if seen > 16:
        return None
    k = len(full)
    while k > 0 and tuple(full[:k]) not in modules:
        k -= 1
    target = tuple(full[:k])
    if target not in modules:
        return None
    rest = full[k:]
    if rest and rest[0] in modules[target].reexports and rest[0] not in modules[target].defines:
        return resolve(modules, modules[target].reexports[rest[0]] + rest[1:], seen + 1)
    return target


def crate_graph(crate_dir: Path) -> tuple[str, dict[tuple[str, ...], set[tuple[str, ...]]]]:
    src = crate_dir / "src"
    modules: dict[tuple[str, ...], Module] = {}
    for file in sorted(src.rglob("*.rs")):
        if "bin" in file.relative_to(src).parts[:1]:
            continue  # src/bin/*.rs are crates of their own
        path = module_path(src, file)
        modules[path] = Module(crate_dir.name, path, file)
    for mod in modules.values():
        read_module(mod)
    edges: dict[tuple[str, ...], set[tuple[str, ...]]] = {p: set() for p in modules}
    for mod in modules.values():
        if mod.path == ():
            continue  # the crate root may use anything
        for full, is_reexport in mod.paths:
            if is_reexport and mod.file.name == "mod.rs":
                continue  # a folder's re-exports are its public face, not a use
            target = resolve(modules, full)
            if target is None or target == () or target == mod.path:
                continue
            edges[mod.path].add(target)
    return crate_dir.name, edges


def circles(edges: dict[tuple[str, ...], set[tuple[str, ...]]]) -> list[list[tuple[str, ...]]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict = {}
    low: dict = {}
    stack: list = []
    on: set = set()
    out: list = []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def one_cycle(edges, comp) -> list[tuple[str, ...]]:
    """A shortest cycle through the first module of `comp`, within `comp`."""
    start = comp[0]
    members = set(comp)
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges[v]):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def main(argv: list[str]) -> int:
    dirs = [Path(a) for a in argv] or sorted(p.parent for p in (ROOT / "crates").glob("*/Cargo.toml"))
    failed = False
    for d in dirs:
        name, edges = crate_graph(d)
        found = circles(edges)
        for comp in found:
            failed = True
            cycle = " -> ".join("::".join(p) for p in one_cycle(edges, comp))
            print(f"{name}: circle between {', '.join('::'.join(p) for p in comp)}\n    e.g. {cycle}")
        if not found:
            print(f"{name}: {len(edges) - 1} modules, no circle")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
