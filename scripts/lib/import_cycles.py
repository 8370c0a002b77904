"""Import circles between the files of one crate's `src/`: each `crate::`, `super::` and `self::`
path is resolved to the file it lands in (following `pub use` re-exports in `mod.rs` and
`lib.rs`; unit tests left out), and every strongly connected group of more than one file is
printed. Exits 1 when there is one. Used by scripts/check-layout; a line-based reading of
Rust, enough for this code base's `use` style, not a parser."""
import os, re, sys


def main(root):
    files = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            # A binary's main.rs is a crate of its own, reaching the library by name.
            if f.endswith('.rs') and not (f == 'main.rs' and d == root):
                p = os.path.join(d, f)
                rel = os.path.relpath(p, root)
                mod = rel[:-3].split('/')
                if mod[-1] in ('mod', 'lib', 'main'):
                    mod = mod[:-1]
                files[tuple(mod)] = rel
    def text(rel):
        s = open(os.path.join(root, rel)).read()
        s = re.sub(r'#\[cfg\(test\)\]\s*mod tests\s*\{.*', '', s, flags=re.S)
        return re.sub(r'//.*', '', s)
    reexports = {}
    for mod, rel in files.items():
        for m in re.finditer(r'pub use (self::)?([a-z_]+)::(\{[^}]*\}|[A-Za-z_]+)', text(rel)):
            sub = m.group(2); names = re.findall(r'[A-Za-z_]+', m.group(3))
            for n in names:
                reexports[mod + (n,)] = mod + (sub,)
    def resolve(parts):
        parts = tuple(parts)
        for i in range(len(parts), 0, -1):
            head = parts[:i]
            if head in files and i < len(parts):
                key = head + (parts[i],)
                if key in reexports:
                    return resolve(reexports[key] + parts[i+1:])
                if key in files:
                    continue
                return head
            if head in files and i == len(parts):
                return head
        return None
    edges = {m: set() for m in files}
    for mod, rel in files.items():
        s = text(rel)
        base = mod if rel.endswith(('mod.rs', 'lib.rs')) else mod[:-1]
        paths = []
        for m in re.finditer(r'use\s+((?:crate|super|self)(?:::[A-Za-z_]+)*)(?:::\{([^;]*)\})?', s):
            prefix = m.group(1).split('::')
            if m.group(2):
                for item in re.split(r',', m.group(2)):
                    item = item.strip()
                    if not item: continue
                    first = re.split(r'::|\s', item.replace('{', ' '))[0]
                    paths.append(prefix + [first])
            else:
                paths.append(prefix)
        for m in re.finditer(r'(?<![A-Za-z_:])((?:crate|super)(?:::[A-Za-z_]+)+)', s):
            paths.append(m.group(1).split('::'))
        for p in paths:
            if p[0] == 'crate':
                parts = p[1:]
            elif p[0] == 'self':
                parts = list(base) + p[1:]
            else:
                b = list(base)
                while p and p[0] == 'super':
                    b = b[:-1]; p = p[1:]
                parts = b + p
            t = resolve(parts)
            if t is not None and t != mod and t != ():
                edges[mod].add(t)
    # Tarjan
    index = {}; low = {}; stack = []; on = set(); out = []; c = [0]
    sys.setrecursionlimit(10000)
    def sc(v):
        index[v] = low[v] = c[0]; c[0] += 1; stack.append(v); on.add(v)
        for w in edges[v]:
            if w not in index:
                sc(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1:
                out.append(comp)
    for v in edges:
        if v not in index: sc(v)
    for comp in out:
        names = sorted(files[m] for m in comp)
        print('cycle:', ' '.join(names))
        for m in comp:
            print('   ', files[m], '->', ' '.join(sorted(files[t] for t in edges[m] if t in comp)))
    if not out:
        print(root + ': no import cycles among', len(files), 'files')
    return 1 if out else 0


if __name__ == '__main__':
    sys.exit(max(main(r) for r in sys.argv[1:]))
