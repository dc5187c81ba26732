#!/usr/bin/env python3
"""Module import cycles of orgboard's `src/`: node = a module (a file),
edge A -> B when A names `crate::B…` (or `super::…`) outside its unit
tests; prints the strongly connected components of more than one module
(each is an import cycle). Usage: `python3 .ci/module_cycles.py [COMMIT]`
(default: the working tree). Used for issue 15's before/after counts; not
run by CI."""
import re, subprocess, sys
from collections import defaultdict
import os
commit = sys.argv[1] if len(sys.argv) > 1 else None
repo = sys.argv[2] if len(sys.argv) > 2 else "."
if commit:
    files = subprocess.run(["git","-C",repo,"ls-tree","-r","--name-only",commit,"src"],capture_output=True,text=True).stdout.split()
else:
    files = [os.path.relpath(os.path.join(d, f), repo) for d, _, fs in os.walk(os.path.join(repo, "src")) for f in fs]
def read(f):
    if commit:
        return subprocess.run(["git","-C",repo,"show",f"{commit}:{f}"],capture_output=True,text=True).stdout
    return open(os.path.join(repo, f)).read()
files = [f for f in files if f.endswith(".rs")]
def modpath(f):
    p = f[len("src/"):-3].split("/")
    if p[-1] in ("mod","lib","main"): p = p[:-1]
    return "::".join(p)
mods = {modpath(f): f for f in files if not f.endswith("main.rs")}
def resolve(path):
    parts = path.split("::")
    for n in range(len(parts), 0, -1):
        cand = "::".join(parts[:n])
        if cand in mods: return cand
    return None
edges = defaultdict(set)
for m, f in mods.items():
    src = read(f)
    # drop #[cfg(test)] modules at the end of files
    cut = src.find("#[cfg(test)]\nmod tests")
    if cut >= 0: src = src[:cut]
    src = re.sub(r"//[^\n]*", "", src)
    # expand `use crate::{a, b::c}` groups
    for g in re.finditer(r"crate::\{([^}]*)\}", src):
        for item in g.group(1).split(","):
            item = item.strip().split(" as ")[0]
            if item:
                t = resolve(item.replace(" ", ""))
                if t and t != m and not m.startswith(t + "::") : edges[m].add(t)
    for r in re.finditer(r"crate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)", src):
        t = resolve(r.group(1))
        if t and t != m and not m.startswith(t + "::"): edges[m].add(t)
    base = m.split("::")
    is_mod_file = f.endswith("mod.rs") or f.endswith("lib.rs")
    parent = base if is_mod_file else base[:-1]
    for r in re.finditer(r"\bsuper::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)", src):
        full = "::".join(parent[:-1] + r.group(1).split("::")) if parent else r.group(1)
        t = resolve(full)
        if t and t != m and not m.startswith(t + "::"): edges[m].add(t)
# Tarjan
index = {}; low = {}; stack = []; on = set(); sccs = []; i = [0]
sys.setrecursionlimit(10000)
def visit(v):
    index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index: visit(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        sccs.append(comp)
for v in list(mods): 
    if v not in index: visit(v)
big = sorted([sorted(c) for c in sccs if len(c) > 1], key=len, reverse=True)
print(f"{commit or 'working tree'}: {len(mods)} modules, {sum(len(e) for e in edges.values())} edges, {len(big)} cycles")
for c in big: print(f"  {len(c)}: {', '.join(c)}")
