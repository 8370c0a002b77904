"""Import circles between the files of one crate's `src/`: every `crate::`, `super::` and
`self::` path, in `use` trees (nested groups included) and in code, is resolved to the file it
lands in (following `pub use` re-exports; unit tests left out), and every strongly connected
group of more than one file is printed (a folder's mod.rs naming its own children is not an
edge: see `edges_of`). Exits 1 when there is one. Used by
scripts/check-layout, and tested on fixtures with known circles by test_import_cycles.py. A
reading of Rust's paths, not a parser: inline modules other than `mod tests` are not modelled.

Paths are resolved as rustc does: `self` is the module the file defines (`a/b.rs` and
`a/b/mod.rs` both define `a::b`), `super` its parent, `crate` the root."""
import os, re, sys

IDENT = r'[A-Za-z_][A-Za-z0-9_]*'


def use_paths(tree):
    """The paths a `use` tree (aliases stripped) names: `a::{b, c::{d, e}, self}` gives
    [a, b], [a, c, d], [a, c, e], [a]."""
    tree = re.sub(r'\s+', '', tree)
    out = []

    def walk(s, prefix):
        # s is one tree: `x::y::{...}`, `x::y`, `x as z`, `*`, or `self`
        i = s.find('{')
        if i < 0:
            parts = [p for p in s.split('::') if p and p != '*']
            if parts and parts[-1] == 'self':
                parts = parts[:-1]
            out.append(prefix + parts)
            return
        head = [p for p in s[:i].split('::') if p]
        inner = s[i + 1:s.rindex('}')]
        depth, start = 0, 0
        for j, ch in enumerate(inner + ','):
            if ch == '{':
                depth += 1
            elif ch == '}':
                depth -= 1
            elif ch == ',' and depth == 0:
                item = inner[start:j]
                start = j + 1
                if item:
                    walk(item, prefix + head)

    walk(tree, [])
    return out


def strip_alias(tree):
    """`x as y` → `x` for every leaf, whitespace kept out of the way first."""
    return re.sub(r'\s+as\s+' + IDENT, '', tree)


def text_of(path):
    s = open(path).read()
    s = re.sub(r'#\[cfg\(test\)\]\s*mod tests\s*\{.*', '', s, flags=re.S)
    s = re.sub(r'/\*.*?\*/', '', s, flags=re.S)
    return re.sub(r'//.*', '', s)


def module_files(root):
    files = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            # A binary's main.rs is a crate of its own, reaching the library by name.
            if f.endswith('.rs') and not (f == 'main.rs' and d == root):
                rel = os.path.relpath(os.path.join(d, f), root)
                mod = rel[:-3].split('/')
                if mod[-1] in ('mod', 'lib', 'main'):
                    mod = mod[:-1]
                files[tuple(mod)] = rel
    return files


def paths_in(s, children):
    """Every crate-relative path a file's text names, as lists of segments. `children` are
    the names of the file's own child modules: since Rust 2018 `use child::X` and
    `child::f()` need no `self::`."""
    paths = []
    for m in re.finditer(r'\buse\s+([^;]*);', s):
        for p in use_paths(strip_alias(m.group(1))):
            if p and p[0] in ('crate', 'super', 'self'):
                paths.append(p)
            elif p and p[0] in children:
                paths.append(['self'] + p)
    for m in re.finditer(r'(?<![A-Za-z0-9_:])(' + IDENT + r'(?:::' + IDENT + r')+)', s):
        p = m.group(1).split('::')
        if p[0] in ('crate', 'super', 'self'):
            paths.append(p)
        elif p[0] in children:
            paths.append(['self'] + p)
    return paths


def edges_of(root):
    files = module_files(root)
    texts = {mod: text_of(os.path.join(root, rel)) for mod, rel in files.items()}
    reexports = {}
    for mod, s in texts.items():
        for m in re.finditer(r'\bpub(?:\([a-z]+\))?\s+use\s+([^;]*);', s):
            for p in use_paths(strip_alias(m.group(1))):
                if not p:
                    continue
                target = absolute(mod, p) if p[0] in ('crate', 'super', 'self') else list(mod) + p
                reexports[mod + (p[-1],)] = tuple(target)

    def resolve(parts, seen=()):
        parts = tuple(parts)
        for i in range(len(parts), -1, -1):
            head = parts[:i]
            if head not in files:
                continue
            if i < len(parts):
                key = head + (parts[i],)
                if key in reexports and key not in seen:
                    return resolve(reexports[key] + parts[i + 1:], seen + (key,))
            return head
        return None

    edges = {m: set() for m in files}
    for mod, s in texts.items():
        children = {m[-1] for m in files if len(m) == len(mod) + 1 and m[:-1] == mod}
        for p in paths_in(s, children):
            t = resolve(absolute(mod, p))
            # A folder's mod.rs (or lib.rs) is the folder's face: it declares its children,
            # re-exports them and may pick among them, and they use what it defines (a trait
            # next to its implementations, STYLE.md). Only edges that leave a module's own
            # subtree can close a circle.
            if t is not None and t != mod and t[:len(mod)] != mod:
                edges[mod].add(t)
    return files, edges


def absolute(mod, p):
    """The crate-absolute path of `p` written in module `mod`."""
    if p[0] == 'crate':
        return list(p[1:])
    base = list(mod)
    rest = list(p)
    if rest[0] == 'self':
        rest = rest[1:]
    while rest and rest[0] == 'super':
        base = base[:-1]
        rest = rest[1:]
    return base + rest


def cycles(root):
    files, edges = edges_of(root)
    index, low, stack, on, out, c = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def sc(v):
        index[v] = low[v] = c[0]
        c[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                sc(w)
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
                out.append(comp)

    for v in sorted(edges):
        if v not in index:
            sc(v)
    return [(sorted(files[m] for m in comp),
             {files[m]: sorted(files[t] for t in edges[m] if t in comp) for m in comp})
            for comp in out]


def main(root):
    found = cycles(root)
    for names, inside in found:
        print('cycle in %s:' % root, ' '.join(names))
        for f in sorted(inside):
            print('   ', f, '->', ' '.join(inside[f]))
    if not found:
        print(root + ': no import cycles among', len(module_files(root)), 'files')
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(max(main(r) for r in sys.argv[1:]))
