#!/usr/bin/env python3
"""Top-level modules of a crate that reference each other (issue #18: "no module imports one
that imports it back").

Run from the workspace root: `python3 scripts/module-cycles.py`. Prints one line per pair
(`crate a <-> b`, with the files behind each direction) and exits 1 when there is any.
With `--nested`, also sibling modules below the top level (`commands::run <-> commands::via_api`);
a module and its own parent are not a pair.

A reference is any path outside comments and test modules that names another top-level
module of the same crate: `crate::a::…`, a group `crate::{a, b::C}` (nested groups too),
`super::…` chains that climb to the crate root (`super::a` in `src/x.rs`, `super::super::a`
in `src/x/y.rs`), and items the crate root re-exports from a module (`crate::Error` when
`lib.rs` says `pub use error::Error`). Files under `src/bin/` and the root file itself are
not modules of the pair.
"""

import os
import re
import sys

CRATES = ['observability', 'adapters', 'agent-config', 'context', 'export', 'workflows',
          'runtime', 'change', 'plans', 'test-utils', '.']


def module_path(src, path):
    """The module a file is, as a list of names (`[]` for lib.rs/main.rs)."""
    parts = os.path.relpath(path, src)[:-3].split(os.sep)
    if parts[-1] in ('mod', 'lib', 'main'):
        parts = parts[:-1]
    return parts


def blank_comments_and_strings(text):
    """`text` with comments removed and string and char literals emptied."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith('//', i):
            j = text.find('\n', i)
            i = n if j < 0 else j
        elif text.startswith('/*', i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith('/*', i):
                    depth, i = depth + 1, i + 2
                elif text.startswith('*/', i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif (m := re.match(r'b?r(#*)"', text[i:i + 260])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == '_')):
            close = '"' + m.group(1)
            j = text.find(close, i + m.end())
            out.append('""')
            i = n if j < 0 else j + len(close)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == '\\' else 1
            out.append('""')
            i = j + 1
        elif c == "'" and (m := re.match(r"'(?:\\.[^']*|[^'\\])'", text[i:i + 12])):
            out.append("' '")
            i += m.end()
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def strip(text):
    """The text without comments, string literals and test modules."""
    text = blank_comments_and_strings(text)
    # Test modules: `#[cfg(test)]` followed by `mod name {` … to its closing brace.
    out, i = [], 0
    for m in re.finditer(r'#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{', text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {'{': 1, '}': -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return ''.join(out)


def root_names(text, here):
    """The names at the crate root that `text` (the module `here`) refers to."""
    return [p[0] for p in references(text, here) if p]


def reexports(root_text):
    """Names the crate root re-exports, mapped to the module they come from."""
    out = {}
    for m in re.finditer(r'\bpub(?:\([^)]*\))?\s+use\s+(?:self::|crate::)?(?=[a-z_][a-z_0-9]*::)', root_text):
        for path in paths_at(root_text, m.end()):
            if len(path) >= 2:
                out[path[-1]] = path[0]
    return out


def paths_at(text, start):
    """Every path of the use-tree that starts at `text[start]` (after a `::`), as lists of
    names: `a::b` → [[a, b]]; `{a, b::{c, d}}` → [[a], [b, c], [b, d]]."""
    m = re.match(r'\s*((?:(?:r#)?[A-Za-z_][A-Za-z_0-9]*\s*::\s*)*)(\{|(?:r#)?[A-Za-z_][A-Za-z_0-9]*|\*)?', text[start:])
    segs = [x for x in re.split(r'\s*::\s*', m.group(1).strip()) if x]
    last = m.group(2)
    if last == '{':
        out = []
        brace = start + m.end() - 1
        depth, j, item_start = 0, brace, brace + 1
        while j < len(text):
            c = text[j]
            if c == '{':
                depth += 1
            elif c == '}':
                depth -= 1
                if depth == 0:
                    break
            if depth == 1 and c == ',':
                out.extend(segs + p for p in paths_at(text, item_start))
                item_start = j + 1
            j += 1
        if text[item_start:j].strip():
            out.extend(segs + p for p in paths_at(text, item_start))
        return out or [segs]
    if last and last != '*':
        segs.append(last)
    return [segs]


def references(text, here):
    """Absolute paths (lists of names from the crate root) that the module `here` names."""
    out = []
    for m in re.finditer(r'\bcrate::', text):
        out.extend(paths_at(text, m.end()))
    for m in re.finditer(r'(?<![A-Za-z_0-9:])((?:super::)+)', text):
        ups = m.group(1).count('super::')
        if ups > len(here):
            continue
        base = here[:len(here) - ups]
        out.extend(base + p for p in paths_at(text, m.end()))
    return out


def sibling_pairs(crate, src, mods):
    """Modules under the same parent (below the top level) that reference each other."""
    known = {tuple(m) for m in mods.values()}
    edges = {}
    for p, here in mods.items():
        for path in references(strip(open(p).read()), here):
            # The longest prefix that is a module.
            target = None
            for k in range(len(path), 0, -1):
                if tuple(path[:k]) in known:
                    target = path[:k]
                    break
            if not target:
                continue
            lca = 0
            while lca < min(len(here), len(target)) and here[lca] == target[lca]:
                lca += 1
            if lca == 0 or lca >= len(here) or lca >= len(target):
                continue  # top level (reported above), or parent and child
            a, b = tuple(here[:lca + 1]), tuple(target[:lca + 1])
            edges.setdefault(a, {}).setdefault(b, set()).add(os.path.relpath(p, src))
    found = 0
    for a in sorted(edges):
        for b in sorted(edges[a]):
            if a < b and a in edges.get(b, {}):
                found += 1
                na, nb = '::'.join(a), '::'.join(b)
                print(f'{crate} {na} <-> {nb}    ({", ".join(sorted(edges[a][b]))}; '
                      f'{", ".join(sorted(edges[b][a]))})')
    return found


def main():
    found = 0
    for crate in CRATES:
        src = os.path.join(crate, 'src')
        if not os.path.isdir(src):
            continue
        files = []
        for dirpath, _, names in os.walk(src):
            for f in names:
                if f.endswith('.rs'):
                    files.append(os.path.join(dirpath, f))
        mods = {}
        for p in files:
            m = module_path(src, p)
            if m and m[0] != 'bin':
                mods[p] = m
        tops = {m[0] for m in mods.values()}
        root = next((os.path.join(src, r) for r in ('lib.rs', 'main.rs')
                     if os.path.exists(os.path.join(src, r))), None)
        exported = reexports(strip(open(root).read())) if root else {}
        edges = {}
        for p, here in mods.items():
            for name in root_names(strip(open(p).read()), here):
                target = name if name in tops else exported.get(name)
                if target not in tops:
                    continue
                if target != here[0]:
                    edges.setdefault(here[0], {}).setdefault(target, set()).add(
                        os.path.relpath(p, src))
        for a in sorted(edges):
            for b in sorted(edges[a]):
                if a < b and a in edges.get(b, {}):
                    found += 1
                    print(f'{crate} {a} <-> {b}    ({a}→{b}: {", ".join(sorted(edges[a][b]))}; '
                          f'{b}→{a}: {", ".join(sorted(edges[b][a]))})')
        if '--nested' in sys.argv:
            found += sibling_pairs(crate, src, mods)
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main())
