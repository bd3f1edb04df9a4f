"""Tables of final metrics, mean with 95% CI over seeds, in Markdown or LaTeX; best marked.

``regretlab-table DIR...`` tabulates saved run directories (or multirun directories) without
recomputing anything. Each metric is read as its environment declares it (`MetricInfo`, recorded
in summary.json): its interval follows its support (Student t, BCa bootstrap for non-negative
metrics, Clopper–Pearson for indicators), a non-negative metric gets a median column beside its
mean, and the best mean of a column is the lowest or the highest as the metric's direction says.
``--reference AGENT`` adds, per metric, the ratio of each agent's mean to the reference agent's
in the same run, with a paired interval over the seeds (`stats.ratio_ci`, from final.parquet).

Runs whose environment declared an exact oracle for a curve metric (summary.json: an agent's
``oracle``) get a second table, the self-check, recomputed here from metrics.parquet
(`results.self_check`): the per-step mean over t and seeds beside the oracle's mean with a
z-score, and the maximum over t of the mean over seeds beside the oracle's maximum with their
ratio, and the mean over seeds at the oracle's argmax with a z-score.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import numpy as np

from experiments.protocol import MetricInfo
from experiments.results import Run, find_runs, self_check
from experiments.stats import ratio_ci


@dataclass
class Row:
    label: str  # agent name, plus the run's distinguishing overrides in a multirun
    final: dict  # metric -> {"mean", "ci_low", "ci_high"} (+ "median" for non-negative metrics)
    steps_per_second: float | None = None
    ratios: dict = field(default_factory=dict)  # metric -> (ratio, low, high) to the reference


def rows_from_runs(
    runs: list[Run], reference: str | None = None, metrics: list[str] | None = None
) -> list[Row]:
    """One row per agent per run; runs are told apart by their Hydra overrides.

    With `reference`, each row also holds per metric the ratio of means to the reference agent of
    the same run with its paired interval (`ratio_ci` over the per-seed finals). KeyError (one
    line) when a run lacks the reference agent.
    """
    distinct = _distinct_overrides(runs)
    rows = []
    for run, extra in zip(runs, distinct, strict=True):
        ratios = _ratios(run, reference, metrics) if reference else {}
        for name, a in run.summary["agents"].items():
            label = f"{name} ({', '.join(extra)})" if extra else name
            rows.append(Row(label, a["final"], a.get("steps_per_second"), ratios.get(name, {})))
    return rows


def _ratios(run: Run, reference: str, metrics: list[str] | None) -> dict[str, dict]:
    """{agent: {metric: ratio_ci(agent's per-seed finals, the reference's)}} of one run."""
    agents = list(run.summary["agents"])
    if reference not in agents:
        raise KeyError(
            f"--reference: {run.path} has no agent {reference!r} (has {', '.join(agents)})"
        )
    df = run.finals
    per_agent = {a: g.sort_values("seed") for a, g in df.groupby("agent", observed=True)}
    names = [m for m in (metrics or run.final_names()) if m in df.columns]
    ref = per_agent[reference]
    out = {}
    for agent in agents:
        rows = per_agent[agent]
        out[agent] = {
            m: tuple(float(v) for v in ratio_ci(rows[m].to_numpy(), ref[m].to_numpy()))
            for m in names
        }
    return out


def infos_from_runs(runs: list[Run]) -> dict[str, MetricInfo]:
    """The recorded `MetricInfo` of every final metric of the runs (first run that has it)."""
    out: dict[str, MetricInfo] = {}
    for run in runs:
        for m in run.final_names():
            if m not in out:
                out[m] = run.metric_info(m)
    return out


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
    lower_is_better: bool | None = None,
    speed: bool = True,
    infos: dict[str, MetricInfo] | None = None,
    reference: str | None = None,
) -> str:
    """A table with one row per `Row`; the best mean of each metric column is marked.

    The best is the lowest mean unless the metric's `MetricInfo` (in `infos`) says higher is
    better; `lower_is_better` overrides the direction of every column. A metric whose rows carry a
    ``median`` gets a median column; rows with `ratios` give a ratio column per metric, headed by
    `reference`.
    """
    if not rows:
        return ""
    infos = infos or {}
    metrics = metrics or sorted({k for r in rows for k in r.final})
    header = ["agent"]
    columns = []  # (metric, what): what in {"ci", "median", "ratio"}
    for m in metrics:
        columns.append((m, "ci"))
        header.append(f"{m} (95% CI)")
        if any("median" in r.final.get(m, {}) for r in rows):
            columns.append((m, "median"))
            header.append(f"{m} median")
        if any(m in r.ratios for r in rows):
            columns.append((m, "ratio"))
            header.append(f"{m} / {reference or 'reference'} (95% CI)")
    best = {m: _best(rows, m, _lower(m, lower_is_better, infos)) for m in metrics}
    if speed:
        header.append("agent-steps/s")
    body = []
    for r in rows:
        cells = [_escape(r.label, fmt)]
        for m, what in columns:
            cells.append(_cell(r, m, what, fmt, len(rows) > 1 and best[m] is not None, best[m]))
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


def check_rows(runs: list[Run]) -> list[tuple[str, str, dict]]:
    """(row label, metric, `self_check` recomputed from metrics.parquet) for every agent of
    `runs` with a recorded oracle."""
    distinct = _distinct_overrides(runs)
    out = []
    for run, extra in zip(runs, distinct, strict=True):
        for name, a in run.summary["agents"].items():
            for metric, o in (a.get("oracle") or {}).items():
                df = run.metrics
                rows = df[df["agent"] == name].sort_values(["seed", "t"])
                rounds = np.sort(rows["t"].unique())
                cum = rows[metric].to_numpy(np.float64).reshape(-1, rounds.size)
                check = self_check(rounds, cum, o["oracle_mean"], o["oracle_max"], o["oracle_t"])
                label = f"{name} ({', '.join(extra)})" if extra else name
                out.append((label, metric, check))
    return out


def format_checks(checks: list[tuple[str, str, dict]], fmt: str = "markdown") -> str:
    """The self-check table of `check_rows` (or of summaries' ``oracle`` entries): per agent and
    metric, the per-step mean ± se, its oracle and z; the max over t, the oracle's max, their
    ratio; the mean at the oracle's argmax t ± se and its z. A note follows when the metrics were
    recorded on a grid coarser than every step (then "per step" means per recorded interval)."""
    if not checks:
        return ""
    header = ["agent", "metric", "per-step mean ± se", "oracle mean", "z", "max over t (t)",
              "oracle max (t)", "max / oracle", "at oracle's t ± se",
              "z at oracle's t"]  # fmt: skip
    body = []
    for label, metric, c in checks:
        m, x = c["mean"], c["max"]
        body.append(
            [
                _escape(label, fmt),
                _escape(metric, fmt),
                _pm(m["value"], m["se"], fmt),
                _num(m["oracle"]),
                _opt(m["z"], ".2f"),
                f"{_num(x['value'])} ({_span(x['t'])})",
                f"{_num(x['oracle'])} ({_span(x['oracle_t'])})",
                _opt(x["ratio"], ".4f"),
                _pm(x["at_oracle_t"], x["se"], fmt),
                _opt(x["z"], ".2f"),
            ]
        )
    note = ""
    if not all(c["per_step"] for _, _, c in checks):
        note = (
            "\nmax over t: over the recorded intervals (means per step within each);"
            " record.grid=every gives per-step values"
        )
    if fmt == "latex":
        lines = [
            "\\begin{tabular}{ll" + "r" * (len(header) - 2) + "}",
            "\\toprule",
            " & ".join(_escape(h, fmt) for h in header) + " \\\\",
            "\\midrule",
            *(" & ".join(c) + " \\\\" for c in body),
            "\\bottomrule",
            "\\end{tabular}",
        ]
        return "\n".join(lines) + note.replace("\n", "\n% ")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in body]) + note


def _pm(value: float, se: float | None, fmt: str) -> str:
    pm = "$\\pm$" if fmt == "latex" else "±"
    return _num(value) if se is None else f"{_num(value)} {pm} {_num(se)}"


def _opt(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def _span(t: list[int]) -> str:
    return f"t = {t[0]}" if t[0] == t[1] else f"t = {t[0]}..{t[1]}"


def _lower(metric: str, override: bool | None, infos: dict[str, MetricInfo]) -> bool:
    if override is not None:
        return override
    return infos[metric].lower_is_better if metric in infos else True


def _best(rows: list[Row], metric: str, lower: bool) -> float | None:
    vals = [r.final[metric]["mean"] for r in rows if metric in r.final]
    vals = [v for v in vals if not np.isnan(v)]
    if not vals:
        return None
    return min(vals) if lower else max(vals)


def _cell(r: Row, m: str, what: str, fmt: str, mark: bool, best: float | None) -> str:
    """One cell: ``mean [low, high]`` (bold when best), the median, or the ratio."""
    if what == "ratio":
        if m not in r.ratios:
            return ""
        ratio, lo, hi = r.ratios[m]
        if np.isnan(ratio):
            return "n/a"
        if np.isnan(lo):  # one seed: no interval
            return f"{_num(ratio)} [no interval: n = 1]"
        return f"{_num(ratio)} [{_num(lo)}, {_num(hi)}]"
    if m not in r.final:
        return ""
    s = r.final[m]
    if what == "median":
        return _num(s["median"]) if "median" in s else ""
    if s["ci_low"] is None:  # one seed: no interval
        cell = f"{_num(s['mean'])} [no interval: n = 1]"
    else:
        cell = f"{_num(s['mean'])} [{_num(s['ci_low'])}, {_num(s['ci_high'])}]"
    if mark and s["mean"] == best:
        cell = f"**{cell}**" if fmt == "markdown" else f"\\textbf{{{cell}}}"
    return cell


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
    ap.add_argument(
        "--higher-is-better",
        action="store_true",
        help="mark the largest mean in every column (default: each metric's declared direction)",
    )
    ap.add_argument(
        "--reference",
        metavar="AGENT",
        help="add per metric the ratio of means to AGENT (same run, paired over seeds)",
    )
    args = ap.parse_args(argv)
    try:
        runs = find_runs(args.dirs)
        rows = rows_from_runs(runs, args.reference, args.metric)
    except FileNotFoundError as e:
        print(f"regretlab-table: error: {e}", file=sys.stderr)
        return 2
    except KeyError as e:
        print(f"regretlab-table: error: {e.args[0]}", file=sys.stderr)
        return 2
    print(
        format_table(
            rows,
            args.metric,
            args.format,
            lower_is_better=False if args.higher_is_better else None,
            infos=infos_from_runs(runs),
            reference=args.reference,
        )
    )
    checks = format_checks(check_rows(runs), args.format)
    if checks:
        print("\nself-check against the exact oracle (mean over seeds):")
        print(checks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
