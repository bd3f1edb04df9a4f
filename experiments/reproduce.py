"""``regretlab-reproduce PAPER``: run a paper's experiments, write its figures and tables, and
print the comparison with the published numbers or theoretical rates (docs/usage.md, "Reproducing
a paper").

    regretlab-reproduce --list                            # the papers and what each item is
    regretlab-reproduce streaming_wang2023 --quick        # reduced sizes: minutes
    regretlab-reproduce streaming_wang2023 --only R1,R7   # paper scale, two items
    regretlab-reproduce streaming_wang2023 --out DIR
    regretlab-reproduce all --quick                       # every paper in turn, and a summary

A paper is a module of its domain package, registered in `PAPERS` by name, that defines

    TITLE: str                                   # the paper, with its venue
    ITEMS: dict[str, Callable[[Reproduction], None]]   # "R1" -> the function reproducing it

Each item runs experiment configs through the same path as the ``regretlab`` command (compose ->
validate -> simulate -> run directory), so an interrupted reproduction resumes: finished runs are
found on disk and not recomputed. The item then writes its tables and figures and records checks
(our value with its CI, the target, its source, pass or fail).

Output in ``--out`` (default ``reproductions/PAPER``, ``reproductions/PAPER-quick`` with --quick):
``runs/NAME/`` (run directories), ``ITEM_*.md|csv|png``, and ``report.md`` listing every check,
table and figure. ``all`` (or a comma-separated list of papers) runs every paper in turn into
``--out``/PAPER (default ``reproductions/PAPER[-quick]``) and writes ``summary.md`` beside them
(default ``reproductions/summary[-quick].md``): per paper its checks ok / total, its time and its
report; a paper that stops on an error is listed as such and the others still run. The exit
status is 1 when a check failed (or, with several papers, a paper stopped on an error), 2 on bad
arguments.

``--launcher NAME`` runs the papers instead as the jobs of a Hydra multirun (a tiny Hydra app
whose config has a ``paper`` field, swept as ``-m paper=a,b,...``) through the Hydra launcher
NAME (``basic``, ``joblib``, ``submitit_slurm``, ...; ``--launcher-override
hydra.launcher.n_jobs=2`` sets its options). Each job runs the single-paper entry
(`reproduce`) into the same directory as above and leaves its outcome in
``.reproduce-status.json`` there; once the multirun returns, the same ``summary.md`` is written
from those. Hydra's own files go to ``--out``/multirun (default
``reproductions/multirun[-quick]``).

    regretlab-reproduce all --quick --launcher joblib
    regretlab-reproduce streaming_wang2023,paging_antoniadis2023 --launcher submitit_slurm

``--list`` describes every item: the first sentence of its bullet in the paper module's
docstring (``* R1 (`name`): ...``), else its function's docstring.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.results import Run, atomic_write, git_revision

PAPERS = {
    "streaming_wang2023": "bandits.streaming.reproduction",
    "dp_continual_jain2023": "privacy.reproduction",
    "dpbai_chen2024": "privacy.dpbai_reproduction",
    "paging_antoniadis2023": "paging.reproduction",
    "latent_mdp_zhou2023": "rl.reproduction",
}


@dataclass
class Check:
    """One comparison of a reproduced number with its target."""

    item: str  # "R1"
    quantity: str  # what is compared, e.g. "clear-cut loglog / uniform (faithful)"
    ours: str  # our value, formatted, with its CI
    target: str  # the published number or theoretical rate
    source: str  # where the target comes from: paper, section/theorem/table, or "our re-run"
    ok: bool
    note: str = ""


@dataclass
class Reproduction:
    """The context an item works in: sizes (quick or full), output directory, recorded checks."""

    paper: str
    out_dir: Path
    quick: bool = False
    progress: bool = True
    checks: list[Check] = field(default_factory=list)
    outputs: list[tuple[str, str, str]] = field(default_factory=list)  # (item, kind, file name)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (item, quantity, why)

    # ----------------------------------------------------------------- running experiments
    def run(self, name: str, overrides: Sequence[str]) -> Run:
        """Run (or find finished) the experiment composed from `overrides`, as `regretlab` would.

        `name` names the run directory ``runs/NAME``. Raises ConfigError on a bad config.
        """
        from hydra import compose, initialize_config_dir
        from omegaconf import OmegaConf

        from experiments.run import _conf_dir, execute, prepare

        overrides = [*overrides, "plot=false", f"progress={str(self.progress).lower()}"]
        with initialize_config_dir(config_dir=_conf_dir(), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        exp = prepare(cfg, overrides)
        out = self.out_dir / "runs" / name
        (out / ".hydra").mkdir(parents=True, exist_ok=True)
        text = OmegaConf.to_yaml(OmegaConf.create(list(overrides)))
        atomic_write(out / ".hydra" / "overrides.yaml", lambda p: p.write_text(text))
        summary = execute(exp, out)
        return Run(out, summary)

    # ----------------------------------------------------------------- outputs
    def path(self, name: str) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / name

    def table(self, item: str, name: str, df: pd.DataFrame, caption: str = "") -> Path:
        """Write `df` as ``ITEM_NAME.md`` (with `caption`) and ``.csv``; return the .md path."""
        stem = f"{item}_{name}"
        md = (f"{caption}\n\n" if caption else "") + markdown(df) + "\n"
        atomic_write(self.path(stem + ".csv"), lambda p: df.to_csv(p, index=False))
        atomic_write(self.path(stem + ".md"), lambda p: p.write_text(md))
        self.outputs.append((item, "table", stem + ".md"))
        return self.path(stem + ".md")

    def figure(self, item: str, name: str, fig) -> Path:
        """Save a matplotlib figure as ``ITEM_NAME.png`` (atomically) and close it."""
        import matplotlib.pyplot as plt

        stem = f"{item}_{name}.png"
        atomic_write(self.path(stem), lambda p: fig.savefig(p, dpi=130, format="png"))
        plt.close(fig)
        self.outputs.append((item, "figure", stem))
        return self.path(stem)

    def check(
        self,
        item: str,
        quantity: str,
        ours: str,
        target: str,
        source: str,
        ok: bool,
        note: str = "",
    ) -> bool:
        """Record (and print) one comparison; return `ok`."""
        c = Check(item, quantity, ours, target, source, bool(ok), note)
        self.checks.append(c)
        mark = "ok  " if c.ok else "FAIL"
        print(f"[{mark}] {item} {quantity}: ours {ours}; target {target} ({source}) {note}")
        return c.ok

    def skip(self, item: str, quantity: str, why: str) -> None:
        """Record (and print) a check that does not apply at these sizes: listed in the report
        under its own heading, counted neither ok nor failed."""
        self.skipped.append((item, quantity, why))
        print(f"[skip] {item} {quantity}: {why}")

    # ----------------------------------------------------------------- report
    def write_report(self, title: str, items: Sequence[str], seconds: float) -> Path:
        checks = pd.DataFrame(
            [
                {
                    "item": c.item,
                    "quantity": c.quantity,
                    "ours (95% CI)": c.ours,
                    "target": c.target,
                    "source": c.source,
                    "result": "ok" if c.ok else "**FAIL**",
                    "note": c.note,
                }
                for c in self.checks
            ]
        )
        lines = [
            f"# Reproduction: {title}",
            "",
            f"`regretlab-reproduce {self.paper}{' --quick' if self.quick else ''} "
            f"--only {','.join(items)}` · {time.strftime('%Y-%m-%d %H:%M')} · "
            f"git {git_revision() or 'unknown'} · {seconds:.0f} s",
            "",
            f"## Checks ({sum(c.ok for c in self.checks)}/{len(self.checks)} ok)",
            "",
            markdown(checks) if len(checks) else "(no checks)",
            "",
        ]
        if self.skipped:
            lines += [f"## Not checked at these sizes ({len(self.skipped)})", ""]
            lines += [f"- {item} {quantity}: {why}" for item, quantity, why in self.skipped]
            lines += [""]
        for item in items:
            mine = [(k, f) for i, k, f in self.outputs if i == item]
            if not mine:
                continue
            lines += [f"## {item}", ""]
            for kind, f in mine:
                if kind == "table":
                    lines += [self.path(f).read_text().rstrip(), ""]
                else:
                    lines += [f"![{f}]({f})", ""]
        text = "\n".join(lines)
        atomic_write(self.path("report.md"), lambda p: p.write_text(text))
        return self.path("report.md")


# --------------------------------------------------------------------------- helpers for items
def markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table of `df` (floats in 4 significant digits)."""

    def cell(x) -> str:
        if isinstance(x, float | np.floating):
            return "–" if np.isnan(x) else f"{x:.4g}"
        return str(x).replace("|", "\\|")

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(cell(x) for x in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def fmt_ci(mean: float, low: float, high: float, digits: int = 3) -> str:
    """``mean [low, high]`` in `digits` significant digits."""
    return f"{mean:.{digits}g} [{low:.{digits}g}, {high:.{digits}g}]"


def loglog_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of log y on log x and its standard error."""
    lx, ly = np.log(np.asarray(x, np.float64)), np.log(np.asarray(y, np.float64))
    A = np.stack([lx, np.ones_like(lx)], axis=1)
    coef, *_ = np.linalg.lstsq(A, ly, rcond=None)
    n = lx.size
    if n <= 2:
        return float(coef[0]), float("nan")
    sigma2 = float(np.sum((ly - A @ coef) ** 2)) / (n - 2)
    se = np.sqrt(sigma2 / np.sum((lx - lx.mean()) ** 2))
    return float(coef[0]), float(se)


# --------------------------------------------------------------------------- CLI
def describe(module, item: str, width: int = 200) -> str:
    """What `item` of a paper `module` is, in one line: the first sentence of the item's bullet
    in the module docstring (``* R1 (`name`): text`` or ``* R1, R2: text``) and, where that
    bullet covers several items or there is none, the first line of the item function's
    docstring (without its leading ``R1:``); '' when neither exists."""
    lines = (module.__doc__ or "").splitlines()
    bullet, shared = "", False
    for i, line in enumerate(lines):
        m = re.match(r"\s*[*-]\s+([^:]*):\s*(.*)", line)
        if not m or not re.search(rf"(?<![\w.]){re.escape(item)}(?![\w.])", m.group(1)):
            continue
        text = [m.group(2)]
        for more in lines[i + 1 :]:
            if not more.strip() or re.match(r"\s*[*-]\s", more):
                break
            text.append(more.strip())
        bullet = _first_sentence(" ".join(text), width)
        shared = len(re.findall(r"\b[A-Z]\d+\b", m.group(1))) > 1
        break
    doc = (inspect.getdoc(module.ITEMS[item]) or "").split("\n\n")[0].replace("\n", " ")
    own = _first_sentence(re.sub(rf"^{re.escape(item)}\b[^:]*:\s*", "", doc), width)
    if bullet and own and shared:
        return f"{bullet} — this item: {own}"
    return bullet or own


def _first_sentence(text: str, width: int) -> str:
    """Up to the first full stop that ends a sentence (one followed by a capital or the end:
    "i.i.d. bits" goes on), at most `width` characters."""
    end = re.search(r"\.(\s+(?=[A-Z])|\s*$)", text)
    text = (text[: end.start() + 1] if end else text).strip().rstrip(";").strip()
    text = text[:-1] if text.endswith("..") else text  # "et al.." at a sentence's end
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def load_paper(name: str):
    """The module of paper `name`; a ConfigError (one line) for a name not in `PAPERS`."""
    from experiments.config import ConfigError

    if name not in PAPERS:
        raise ConfigError(f"paper: must be one of {', '.join(sorted(PAPERS))} (got {name!r})")
    return importlib.import_module(PAPERS[name])


def check_items(paper: str, module, only: Sequence[str] | None) -> list[str]:
    """The items of `paper` to run: all, or `only` (each an item of the paper, each once); a
    ConfigError (one line) otherwise."""
    from experiments.config import ConfigError

    items = list(module.ITEMS) if not only else list(only)
    unknown = [i for i in items if i not in module.ITEMS]
    if unknown:
        raise ConfigError(
            f"--only: {paper} has items {', '.join(module.ITEMS)} (got {unknown[0]!r})"
        )
    twice = sorted({i for i in items if items.count(i) > 1}, key=items.index)
    if twice:
        raise ConfigError(f"--only: {twice[0]} is listed twice (each item runs once)")
    return items


def reproduce(
    paper: str,
    out_dir: Path | None = None,
    quick: bool = False,
    only: Sequence[str] | None = None,
    progress: bool = True,
) -> Reproduction:
    """Run the items of `paper` (all, or `only`), write the report; return the context."""
    module = load_paper(paper)
    items = check_items(paper, module, only)
    out_dir = Path(out_dir or Path("reproductions") / (paper + ("-quick" if quick else "")))
    r = Reproduction(paper, out_dir, quick, progress)
    t0 = time.perf_counter()
    for item in items:
        print(f"== {paper} {item}", flush=True)
        module.ITEMS[item](r)
    report = r.write_report(module.TITLE, items, time.perf_counter() - t0)
    print(f"report: {report}")
    return r


STATUS = ".reproduce-status.json"  # a paper's outcome, in its directory (see `run_paper`)
_HYDRA_CONFIG = "regretlab_reproduce"  # the multirun app's config, in Hydra's ConfigStore


@dataclass
class Outcome:
    """One paper's line of ``summary.md``."""

    paper: str
    ok: int  # checks ok
    total: int  # checks
    seconds: float
    error: str  # "" or the one-line error it stopped on
    report: str  # path of its report.md, or "" when it stopped


def paper_dir(paper: str, out_dir: Path | str | None, quick: bool) -> Path:
    """Where `paper` writes with ``all``: ``out_dir/PAPER``, default
    ``reproductions/PAPER[-quick]``."""
    if out_dir:
        return Path(out_dir) / paper
    return Path("reproductions") / (paper + ("-quick" if quick else ""))


def run_paper(
    paper: str, out: Path, quick: bool, progress: bool
) -> tuple[Reproduction | None, Outcome]:
    """`reproduce` every item of `paper` into `out`, catching its error (recorded, one line);
    the outcome is also written to ``out/.reproduce-status.json``."""
    from experiments.config import one_line

    t0 = time.perf_counter()
    try:
        r, error = reproduce(paper, out, quick, None, progress), ""
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stops every paper (`main`: one line)
        raise
    except Exception as e:  # recorded; the other papers still run
        r, error = None, f"{type(e).__name__}: {one_line(e)}"
        print(f"regretlab-reproduce: {paper} stopped: {error}", file=sys.stderr)
    outcome = Outcome(
        paper,
        sum(c.ok for c in r.checks) if r else 0,
        len(r.checks) if r else 0,
        time.perf_counter() - t0,
        error,
        str(r.out_dir / "report.md") if r else "",
    )
    text = json.dumps(outcome.__dict__, indent=1)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / STATUS, lambda p: p.write_text(text))
    return r, outcome


def reproduce_all(
    out_dir: Path | None = None,
    quick: bool = False,
    progress: bool = True,
    papers: Sequence[str] | None = None,
) -> list[tuple[str, Reproduction | None, float, str]]:
    """Every paper of `PAPERS` (or `papers`) in turn, each into ``out_dir/PAPER`` (default
    ``reproductions/PAPER[-quick]``); then ``summary.md`` beside them. A paper that raises is
    recorded with its one-line error and the others still run. Returns (paper, its context or
    None, seconds, error)."""
    done, outcomes = [], []
    for paper in papers or sorted(PAPERS):
        r, outcome = run_paper(paper, paper_dir(paper, out_dir, quick), quick, progress)
        done.append((paper, r, outcome.seconds, outcome.error))
        outcomes.append(outcome)
    write_summary(outcomes, out_dir, quick, papers)
    return done


def summary_path(out_dir: Path | None, quick: bool) -> Path:
    suffix = "-quick" if quick else ""
    return (out_dir / "summary.md") if out_dir else Path("reproductions") / f"summary{suffix}.md"


def write_summary(
    outcomes: Sequence[Outcome],
    out_dir: Path | None,
    quick: bool,
    papers: Sequence[str] | None = None,
    launcher: str = "",
) -> Path:
    """``summary.md``: per paper its checks ok / total, verdict, seconds and report."""
    rows = [
        {
            "paper": o.paper,
            "title": load_paper(o.paper).TITLE,
            "checks ok": f"{o.ok}/{o.total}" if not o.error else "–",
            "result": o.error or ("ok" if o.ok == o.total else "**FAIL**"),
            "seconds": round(o.seconds),
            "report": o.report or "–",
        }
        for o in outcomes
    ]
    what = ",".join(papers) if papers else "all"
    flags = (" --quick" if quick else "") + (f" --launcher {launcher}" if launcher else "")
    text = (
        f"# Reproductions{' (quick)' if quick else ''}\n\n`regretlab-reproduce {what}{flags}` ·"
        f" {time.strftime('%Y-%m-%d %H:%M')} · git {git_revision() or 'unknown'}\n\n"
        f"{markdown(pd.DataFrame(rows))}\n"
    )
    summary = summary_path(out_dir, quick)
    summary.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(summary, lambda p: p.write_text(text))
    print(f"summary: {summary}")
    return summary


# --------------------------------------------------------------------------- through a launcher
def _store_hydra_config() -> None:
    from hydra.core.config_store import ConfigStore

    # and "+modules": {paper: its module}, added by `reproduce_launched`
    node = {"paper": "???", "out": "", "quick": False, "progress": True}
    ConfigStore.instance().store(name=_HYDRA_CONFIG, node=node)


def launcher_error(launcher: str, overrides: Sequence[str] = ()) -> str:
    """'' when Hydra knows the launcher `launcher` (and takes `overrides`), else one line."""
    from hydra import compose, initialize

    from experiments.preflight import hydra_error_line

    _store_hydra_config()
    with initialize(version_base="1.3", config_path=None, job_name="reproduce"):
        try:
            launch = [f"hydra/launcher={launcher}", *overrides]
            compose(_HYDRA_CONFIG, overrides=launch, return_hydra_config=True)
        except Exception as e:
            return hydra_error_line(e)
    return ""


def _hydra_app() -> None:
    """The child process of `reproduce_launched`: Hydra's command line (``-m paper=...``)."""
    import hydra

    _store_hydra_config()
    hydra.main(version_base="1.3", config_path=None, config_name=_HYDRA_CONFIG)(_job)()


def _job(cfg) -> None:
    """A multirun job: reproduce the paper ``cfg.paper`` (module ``cfg.modules[paper]``)."""
    from hydra.core.global_hydra import GlobalHydra

    PAPERS.update(dict(cfg.modules))  # a job in a fresh process knows the parent's registry
    gh = GlobalHydra.instance()
    launching = gh.hydra  # the items compose their experiments with a Hydra of their own
    gh.clear()
    try:
        out = paper_dir(cfg.paper, cfg.out or None, cfg.quick)
        run_paper(cfg.paper, out, cfg.quick, cfg.progress)
    finally:
        gh.clear()
        if launching is not None:
            gh.initialize(launching)


def reproduce_launched(
    papers: Sequence[str],
    launcher: str,
    out_dir: Path | None = None,
    quick: bool = False,
    progress: bool = True,
    overrides: Sequence[str] = (),
    label: Sequence[str] | None = None,
) -> list[Outcome]:
    """`papers` as the jobs of a Hydra multirun through `launcher` (with the Hydra `overrides`,
    e.g. ``hydra.launcher.n_jobs=2``), each into its `paper_dir`; then ``summary.md`` from the
    jobs' status files. `label`: the papers named on the command line (None: all)."""

    _store_hydra_config()
    suffix = "-quick" if quick else ""
    for paper in papers:  # a status left by an earlier run must not pass for this one's
        paper_dir(paper, out_dir, quick).joinpath(STATUS).unlink(missing_ok=True)
    sweep = out_dir / "multirun" if out_dir else Path("reproductions") / f"multirun{suffix}"
    modules = ",".join(f"{p}:'{PAPERS[p]}'" for p in papers)
    args = [
        "-m",
        f"paper={','.join(papers)}",
        f"+modules={{{modules}}}",
        f"out='{out_dir or ''}'",
        f"quick={str(quick).lower()}",
        f"progress={str(progress).lower()}",
        f"hydra/launcher={launcher}",
        f"hydra.sweep.dir='{sweep.absolute()}'",
        "hydra.job.chdir=false",
        *overrides,
    ]
    # Hydra's multirun in a child process: it configures logging (dictConfig closes every
    # handler the caller had) and keeps global state, neither of which belongs to the caller
    entry = (
        "import sys; sys.argv[0] = 'regretlab-reproduce'; "
        "import experiments.reproduce as r; r._hydra_app()"
    )
    subprocess.run([sys.executable, "-c", entry, *args], check=False)
    outcomes = []
    for paper in papers:
        status = paper_dir(paper, out_dir, quick) / STATUS
        if status.is_file():
            outcomes.append(Outcome(**json.loads(status.read_text())))
        else:
            outcomes.append(Outcome(paper, 0, 0, 0.0, "no result: its job did not finish", ""))
    write_summary(outcomes, out_dir, quick, label, launcher)
    return outcomes


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="regretlab-reproduce",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="papers: "
        + ", ".join(sorted(PAPERS))
        + ", or all. Exit status: 0 all checks ok, 1 a check failed (or a paper stopped on an"
        " error with all), 2 bad arguments or a bad config.",
    )
    ap.add_argument(
        "paper",
        nargs="?",
        help="paper name (see --list), a comma-separated list of papers, or all: every paper",
    )
    ap.add_argument(
        "--list", action="store_true", help="list the papers and what each of their items is"
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="reduced sizes (minutes on a laptop, not hours); output in PAPER-quick",
    )
    ap.add_argument(
        "--only", default=None, help="comma-separated items of one paper, e.g. R1,R4 (not with all)"
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default reproductions/PAPER[-quick]; with all: one"
        " subdirectory per paper and summary.md)",
    )
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument(
        "--launcher",
        default=None,
        help="run the papers as the jobs of a Hydra multirun through this Hydra launcher"
        " (basic, joblib, submitit_local, submitit_slurm, ray, ...) instead of in turn here",
    )
    ap.add_argument(
        "--launcher-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Hydra override for the multirun, e.g. hydra.launcher.n_jobs=2 (repeatable)",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    """The ``regretlab-reproduce`` command: 0 when every check passed, 1 when one failed (or a
    paper stopped on an error), 2 on bad arguments or a bad config, 130 on Ctrl-C and 143 on
    SIGTERM (finished runs are kept: the same command resumes)."""
    from experiments import interrupt
    from experiments.config import check_environment

    args = _parser().parse_args(argv)
    bad = check_environment()
    if bad:
        for line in bad:
            print(f"regretlab-reproduce: error: {line}", file=sys.stderr)
        return 2
    interrupt.install()
    try:
        return _main(args)
    except KeyboardInterrupt:
        interrupt.ignore_further()
        print(
            f"regretlab-reproduce: {interrupt.received()}; rerun the same command to finish"
            " (finished runs are kept and not recomputed)",
            file=sys.stderr,
        )
        return interrupt.exit_status()


def _main(args: argparse.Namespace) -> int:
    from experiments.config import ConfigError

    def error(line: str) -> int:
        print(f"regretlab-reproduce: error: {line}", file=sys.stderr)
        return 2

    if args.list or not args.paper:
        for name in sorted(PAPERS):
            m = load_paper(name)
            print(f"{name}: {m.TITLE}\n  items: {', '.join(m.ITEMS)}")
            for item in m.ITEMS:
                print(f"    {item}: {describe(m, item) or '(no description)'}")
        if not args.list:
            print("regretlab-reproduce: error: name a paper, or all", file=sys.stderr)
        return 0 if args.list else 2
    papers = sorted(PAPERS) if args.paper == "all" else [p.strip() for p in args.paper.split(",")]
    unknown = [p for p in papers if p not in PAPERS]
    if unknown:
        return error(f"paper: must be one of {', '.join(sorted(PAPERS))} (got {unknown[0]!r})")
    twice = [p for p in papers if papers.count(p) > 1]
    if twice:
        return error(f"paper: {twice[0]} is listed twice (each paper runs once)")
    if not args.launcher and args.launcher_override:
        return error("--launcher-override: only with --launcher")
    several = args.paper == "all" or len(papers) > 1 or args.launcher
    if several and args.only:
        return error("--only: not with all, a list of papers or --launcher")
    try:
        if args.out is not None:
            from experiments.preflight import check_run_dir

            check_run_dir(str(args.out), "--out")
        only = [s.strip() for s in args.only.split(",")] if args.only else None
        if not several:
            check_items(args.paper, load_paper(args.paper), only)
    except ConfigError as e:
        return error(str(e))
    if several:
        return _main_several(args, papers)
    try:
        r = reproduce(args.paper, args.out, args.quick, only, not args.no_progress)
    except ConfigError as e:  # a bad config of an item: one line (any other error is a bug)
        return error(str(e))
    failed = [c for c in r.checks if not c.ok]
    print(f"{len(r.checks) - len(failed)}/{len(r.checks)} checks ok")
    return 1 if failed else 0


def _main_several(args: argparse.Namespace, papers: list[str]) -> int:
    """``all``, a list of papers, or any papers through a launcher (arguments checked by
    `main`)."""

    def error(line: str) -> int:
        print(f"regretlab-reproduce: error: {line}", file=sys.stderr)
        return 2

    label = None if args.paper == "all" else papers
    progress = not args.no_progress
    if args.launcher:
        bad = launcher_error(args.launcher, args.launcher_override)
        if bad:
            return error(bad)
        outcomes = reproduce_launched(
            papers, args.launcher, args.out, args.quick, progress, args.launcher_override, label
        )
        rows = [(o.paper, o.ok, o.total, o.error) for o in outcomes]
    else:
        done = reproduce_all(args.out, args.quick, progress, label)
        rows = [
            (p, sum(c.ok for c in r.checks) if r else 0, len(r.checks) if r else 0, e)
            for p, r, _, e in done
        ]
    ok, total = sum(row[1] for row in rows), sum(row[2] for row in rows)
    stopped = [p for p, _, _, e in rows if e]
    print(
        f"{ok}/{total} checks ok over {len(rows)} papers"
        + (f"; stopped on an error: {', '.join(stopped)}" if stopped else "")
    )
    return 1 if ok < total or stopped else 0


if __name__ == "__main__":
    sys.exit(main())
