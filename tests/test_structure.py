"""The package structure DESIGN.md fixes, read from the source (no import is executed):

* no module of `experiments/` (the shared engine) imports a domain package;
* domain packages do not import each other, except `privacy` using `bandits` environments;
* no two modules of the project import each other in a circle (directly or through others).

Imports are read with `ast` from every module, including those inside functions, since a
deferred import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bandits", "paging", "privacy", "rl", "experiments")
DOMAINS = ("bandits", "paging", "privacy", "rl")
ALLOWED = {("privacy", "bandits")}  # (importer, imported) pairs between domains


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if p.is_file()
    }


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules imported by module `name` (``from a.b import c`` counts a.b.c if it is a
    module, else a.b)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    mods = project_modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def test_engine_imports_no_domain_package():
    bad = [
        f"{m} imports {d}"
        for m, deps in graph().items()
        if m.split(".")[0] == "experiments"
        for d in deps
        if d.split(".")[0] in DOMAINS
    ]
    assert not bad, bad


def test_domains_import_only_the_allowed_domains():
    bad = []
    for m, deps in graph().items():
        src = m.split(".")[0]
        for d in deps:
            dst = d.split(".")[0]
            if src in DOMAINS and dst in DOMAINS and src != dst and (src, dst) not in ALLOWED:
                bad.append(f"{m} imports {d}")
    assert not bad, bad


def test_no_import_cycles():
    """Tarjan's strongly connected components: every component must be a single module.

    A package's ``__init__`` re-exporting its submodules is an edge package -> submodule; a
    submodule importing its own package's ``__init__`` back would close a circle and is reported.
    """
    g = graph()
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_finds_a_circle(tmp_path):
    """The cycle check itself: two modules importing each other are found."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("import b\n")
    b.write_text("from a import x\n")
    assert imports_of("a", a, {"a", "b"}) == {"b"}
    assert imports_of("b", b, {"a", "b"}) == {"a"}
