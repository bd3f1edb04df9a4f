"""Tables of final metrics, mean with 95% CI over seeds, in Markdown or LaTeX; best marked.

``regretlab-table DIR...`` tabulates saved run directories (or multirun directories) without
recomputing anything.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from experiments.results import Run, find_runs


@dataclass
class Row:
    label: str  # agent name, plus the run's distinguishing overrides in a multirun
    final: dict  # metric -> {"mean", "ci_low", "ci_high"}
    steps_per_second: float | None = None


def rows_from_runs(runs: list[Run]) -> list[Row]:
    """One row per agent per run; runs are told apart by their Hydra overrides."""
    distinct = _distinct_overrides(runs)
    rows = []
    for run, extra in zip(runs, distinct, strict=True):
        for name, a in run.summary["agents"].items():
            label = f"{name} ({', '.join(extra)})" if extra else name
            rows.append(Row(label, a["final"], a.get("steps_per_second")))
    return rows


def _distinct_overrides(runs: list[Run]) -> list[list[str]]:
    """Each run's overrides that not all runs share (agent selection left out)."""
    all_ov = [[o for o in r.overrides if not o.startswith("agents=")] for r in runs]
    if len(runs) < 2:
        return [[] for _ in runs]
    common = set.intersection(*(set(o) for o in all_ov)) if all_ov else set()
    return [[o for o in ov if o not in common] for ov in all_ov]


def format_table(
    rows: list[Row],
    metrics: list[str] | None = None,
    fmt: str = "markdown",
    lower_is_better: bool = True,
    speed: bool = True,
) -> str:
    """A table with one row per `Row`; the best mean of each metric column is marked."""
    if not rows:
        return ""
    metrics = metrics or sorted({k for r in rows for k in r.final})
    best = {}
    for m in metrics:
        vals = [r.final[m]["mean"] for r in rows if m in r.final]
        if vals:
            best[m] = min(vals) if lower_is_better else max(vals)
    header = ["agent", *[f"{m} (95% CI)" for m in metrics]]
    if speed:
        header.append("agent-steps/s")
    body = []
    for r in rows:
        cells = [_escape(r.label, fmt)]
        for m in metrics:
            if m not in r.final:
                cells.append("")
                continue
            s = r.final[m]
            cell = f"{_num(s['mean'])} [{_num(s['ci_low'])}, {_num(s['ci_high'])}]"
            if len(rows) > 1 and s["mean"] == best.get(m):
                cell = f"**{cell}**" if fmt == "markdown" else f"\\textbf{{{cell}}}"
            cells.append(cell)
        if speed:
            cells.append(f"{r.steps_per_second:.3g}" if r.steps_per_second else "")
        body.append(cells)
    if fmt == "latex":
        lines = [
            "\\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
            "\\toprule",
            " & ".join(_escape(h, fmt) for h in header) + " \\\\",
            "\\midrule",
        ]
        lines += [" & ".join(c) + " \\\\" for c in body]
        return "\n".join([*lines, "\\bottomrule", "\\end{tabular}"])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in body])


def _num(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e5 else f"{x:.4e}"


def _escape(s: str, fmt: str) -> str:
    if fmt != "latex":
        return s
    for a, b in (
        ("\\", "\\textbackslash{}"),
        ("_", "\\_"),
        ("%", "\\%"),
        ("&", "\\&"),
        ("#", "\\#"),
        ("$", "\\$"),
    ):
        s = s.replace(a, b)
    return s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="regretlab-table", description="Tabulate saved runs (no recomputation)."
    )
    ap.add_argument("dirs", nargs="+", help="run directories or multirun directories")
    ap.add_argument("--format", choices=("markdown", "latex"), default="markdown")
    ap.add_argument("--metric", action="append", help="metric column(s); default: all")
    ap.add_argument("--higher-is-better", action="store_true", help="mark the largest mean")
    args = ap.parse_args(argv)
    try:
        runs = find_runs(args.dirs)
    except FileNotFoundError as e:
        print(f"regretlab-table: error: {e}", file=sys.stderr)
        return 2
    print(
        format_table(
            rows_from_runs(runs),
            args.metric,
            args.format,
            lower_is_better=not args.higher_is_better,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
