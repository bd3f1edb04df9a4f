"""Figures of saved runs, drawn the way each metric's environment declares it (`MetricInfo`).

``regretlab-plot DIR...`` re-plots saved run directories (or multirun directories) without
recomputing anything:

* a *curve* metric (default: the run's headline metric): the mean over seeds against the env's
  ``x_label`` (rounds, episodes, requests) with its confidence band, in two panels: the declared
  y scale on a linear x axis, and log-log;
* ``--x FIELD``: a metric's final value against a config field swept across the runs of a
  multirun (a dotted path into each run's resolved config: ``horizon``, ``env.budget``), one line
  per agent (and per other swept override), mean with its interval as error bars, log y when the
  metric's scale is log (an error probability). Any metric with a final value works, curves too;
* a *final* metric without ``--x``: one point per agent (and run) with its interval.

``--by FIELD`` (repeatable: ``agent`` or a dotted config path) draws one curve, point or line per
distinct combination of the fields, pooling the seeds of the runs in it (as ``regretlab-table
--by``: values of the same master seed and seed index, which met the same draws, averaged into
one before the interval). A figure keeps the title the run gave it (``T = 10,000, 100 seeds``,
the sweep job's values; `figure_title`). ``regretlab-plot A B`` writes
``A/<metric>_compare.png``: a run's own figure (``<metric>.png`` beside its summary.json) is
only rewritten by re-plotting that run alone, or with ``--overwrite``.

Intervals follow the metric's support (`experiments.stats.interval`): Student t, a BCa bootstrap
for non-negative metrics, Clopper–Pearson for indicators. On a log axis a mean of 0 (no error in n
seeds) cannot be drawn: its interval's upper end is marked with a "v" and the bar starts at the
bottom of the axis. Each agent keeps its colour across figures (a hash of its name).
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from experiments.protocol import CURVE, INDICATOR, NONNEGATIVE, MetricInfo
from experiments.results import SUMMARY_FILE, Run, atomic_write, find_runs, unfinished_runs
from experiments.stats import interval
from experiments.tables import (  # config_value: re-exported, its home was here
    _distinct_overrides,
    _show,
    by_value,
    check_by,
    cluster_means,
    config_value,
    group_label,
    grouped_rows,
    master_seed,
)

# 18 distinct colours: tab10, then Dark2.
_PALETTE = [plt.get_cmap("tab10")(i) for i in range(10)] + [
    plt.get_cmap("Dark2")(i) for i in range(8)
]


def agent_color(name: str) -> tuple:
    """The colour of an agent, fixed by a hash (CRC-32) of its name (the part before a space)."""
    return _PALETTE[_slot(name)]


def _slot(name: str) -> int:
    return zlib.crc32(name.split(" ")[0].encode()) % len(_PALETTE)


def agent_colors(names: Iterable[str]) -> dict[str, tuple]:
    """Colours of the agents of one figure: each its hashed colour, unless another agent of the
    figure has it already; then the next free one (names taken in sorted order, so a figure's
    colours depend only on its set of agents)."""
    names = list(names)
    bases = sorted({n.split(" ")[0] for n in names})
    taken: dict[str, int] = {}
    for b in bases:
        s = _slot(b)
        for _ in range(len(_PALETTE)):
            if s not in taken.values():
                break
            s = (s + 1) % len(_PALETTE)
        taken[b] = s
    return {n: _PALETTE[taken[n.split(" ")[0]]] for n in names}


# --------------------------------------------------------------------------- data
def curves(run: Run, metric: str = "regret", level: float = 0.95):
    """{agent: (t, mean, ci_low, ci_high)} from a run's metrics table (support-aware band)."""
    support = run.metric_info(metric).support
    out = {}
    for agent, g in run.metrics.groupby("agent", observed=True, sort=False):
        wide = g.pivot(index="seed", columns="t", values=metric)
        mean, lo, hi = interval(wide.to_numpy(), support, level, axis=0)
        out[str(agent)] = (wide.columns.to_numpy(), mean, lo, hi)
    return out


def grouped_curves(runs: list[Run], metric: str, by: list[str], level: float = 0.95):
    """{group label: (t, mean, ci_low, ci_high)}: the curves of every (run, agent) with the same
    `by` values pooled over their seeds by clusters of the same (master seed, seed index), as
    ``regretlab-table --by`` pools final values (`tables.cluster_means`: curves that met the
    same draws are averaged first, the band is over the clusters). ValueError (one line) when
    a group's runs were recorded on different grids."""
    check_by(runs, by)
    support = runs[0].metric_info(metric).support
    members: dict[str, list[Any]] = {}
    for run in runs:
        for agent, g in run.metrics.groupby("agent", observed=True, sort=False):
            key = group_label({f: _show(by_value(run, str(agent), f)) for f in by})
            wide = g.pivot(index="seed", columns="t", values=metric)
            members.setdefault(key, []).append((master_seed(run), wide))
    out = {}
    for key, wides in members.items():
        t = wides[0][1].columns.to_numpy()
        if any(not np.array_equal(w.columns.to_numpy(), t) for _, w in wides):
            raise ValueError(f"--by: the runs of {key} were recorded at different rounds")
        values, _ = cluster_means([(s, w.index.to_numpy(), w.to_numpy()) for s, w in wides])
        rates = support == INDICATOR and np.any((values != 0) & (values != 1))
        # clusters' rates, no longer 0 or 1: the bootstrap of their mean (as `tables._pooled`)
        mean, lo, hi = interval(values, NONNEGATIVE if rates else support, level, 0)
        out[key] = (t, mean, lo, hi)
    return out


def figure_title(runs: list[Run]) -> str | None:
    """The title `regretlab` gives a run's figure, recomputed from the summaries: ``T = 10,000,
    100 seeds`` (episodes of H steps for episodic envs) when the runs share it, and a sweep
    job's values when there is one run; None when the runs differ in horizon or seeds."""
    shared = {(r.summary.get("horizon"), r.summary.get("seeds")) for r in runs}
    if len(shared) != 1 or None in next(iter(shared)):
        return None
    horizon, seeds = next(iter(shared))
    H = {(r.summary.get("config") or {}).get("env", {}).get("episode_length") for r in runs}
    if len(H) == 1 and isinstance(h := H.pop(), int) and runs[0].x_label.startswith("episode"):
        title = f"{horizon:,} episodes of {h} steps, {seeds} seeds"
    else:
        title = f"T = {horizon:,}, {seeds} seeds"
    job = runs[0].summary.get("sweep_job") if len(runs) == 1 else None
    if job:
        from experiments.sweep import _hydra_value

        title += ", " + " ".join(f"{k}={_hydra_value(v)}" for k, v in job["values"].items())
    return title


def final_points(
    runs: list[Run], metric: str, x: str, by: list[str] | None = None
) -> dict[str, tuple[np.ndarray, ...]]:
    """{series: (x, mean, ci_low, ci_high)} sorted by x: one series per agent (plus the run's
    other distinguishing overrides), read from each run's summary; with `by`, one series per
    combination of the `by` fields, the runs at each x pooled (`tables.grouped_rows`).

    Raises ValueError (one line) when a run lacks the field or the metric, or x is not a number.
    """
    if by:
        return _grouped_points(runs, metric, x, by)
    others = [[o for o in ov if o.split("=", 1)[0] != x] for ov in _distinct_overrides(runs)]
    series: dict[str, list[tuple[float, float, float, float]]] = {}
    for run, extra in zip(runs, others, strict=True):
        try:
            xv = config_value(run.summary.get("config", {}), x)
        except KeyError:
            raise ValueError(f"--x: {run.path} has no config field {x!r}") from None
        if isinstance(xv, bool) or not isinstance(xv, int | float):
            got = repr(xv) if len(repr(xv)) <= 40 else f"a {type(xv).__name__}"
            raise ValueError(f"--x: {x} must be a number (got {got} in {run.path})")
        for agent, a in run.summary["agents"].items():
            if metric not in a["final"]:
                known = ", ".join(a["final"])
                raise ValueError(f"--metric: {metric!r} is not a metric of {run.path} ({known})")
            f = a["final"][metric]
            label = f"{agent} ({', '.join(extra)})" if extra else agent
            point = (xv, f["mean"], _bound(f["ci_low"]), _bound(f["ci_high"]))
            series.setdefault(label, []).append(point)
    return {k: tuple(np.asarray(sorted(v), np.float64).T) for k, v in series.items()}


def _grouped_points(runs: list[Run], metric: str, x: str, by: list[str]) -> dict:
    final_points(runs, metric, x)  # the same one-line errors for x and the metric
    fields = [f for f in by if f != x]
    series: dict[str, list[tuple[float, float, float, float]]] = {}
    for row in grouped_rows(runs, [*fields, x], [metric]):
        keys = dict(row.keys or {})
        xv = float(keys.pop(x))
        f = row.final[metric]
        label = group_label(keys) or metric
        point = (xv, f["mean"], _bound(f["ci_low"]), _bound(f["ci_high"]))
        series.setdefault(label, []).append(point)
    return {k: tuple(np.asarray(sorted(v), np.float64).T) for k, v in series.items()}


def _bound(x: float | None) -> float:
    """An interval's end from summary.json; null (one seed: no interval) is drawn as no bar."""
    return np.nan if x is None else float(x)


# --------------------------------------------------------------------------- figures
def plot_runs(
    runs: list[Run],
    out: Path,
    metric: str | None = None,
    title: str | None = None,
    x: str | None = None,
    by: list[str] | None = None,
) -> Path:
    """Draw `metric` (default: the first run's headline) of every agent of every run; save to
    `out`. Curves against the env's x-axis; with `x`, final values against that config field;
    a final metric without `x`, one point per agent; with `by`, one curve, line or point per
    combination of those fields. The title defaults to the runs' own (`figure_title`)."""
    metric = metric or runs[0].headline
    info = runs[0].metric_info(metric)
    if x is not None:
        fig = _final_vs_field(runs, metric, info, x, by)
    elif info.kind == CURVE and all(metric in r.metrics.columns for r in runs):
        fig = _curves_figure(runs, metric, info, by)
    else:
        fig = _final_points_figure(runs, metric, info, by)
    title = title or figure_title(runs)
    if title:
        fig.suptitle(title)
    out = Path(out)
    fmt = out.suffix.lstrip(".") or "png"
    meta = {"Title": title} if title and fmt == "png" else None  # readable back from the file
    atomic_write(out, lambda p: fig.savefig(p, dpi=120, format=fmt, metadata=meta))
    plt.close(fig)
    return out


def _curves_figure(runs: list[Run], metric: str, info: MetricInfo, by: list[str] | None = None):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    styles = ["-", "--", ":", "-."]
    if by:  # one curve per group, coloured by its label
        data = [grouped_curves(runs, metric, by)]
        extras: list[list[str]] = [[]]
    else:
        data = [curves(run, metric) for run in runs]
        extras = _distinct_overrides(runs)
    colors = agent_colors(a for d in data for a in d)
    seen: dict[str, int] = {}  # agent -> its curves so far (a style each)
    for i, (d, extra) in enumerate(zip(data, extras, strict=True)):
        for agent, (t, mean, lo, hi) in d.items():
            label = f"{agent} ({', '.join(extra)})" if extra else agent
            base = agent.split(" ")[0]
            style = styles[(seen.get(base, 0) if by else i) % len(styles)]
            seen[base] = seen.get(base, 0) + 1
            for ax in axes:
                ax.plot(t, mean, style, color=colors[agent], label=label, lw=1.6)
                ax.fill_between(t, lo, hi, color=colors[agent], alpha=0.2, lw=0)
    axes[0].set_yscale(info.scale)
    axes[0].set_title("linear" if info.scale == "linear" else "log y")
    axes[1].set_title("log-log")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel(runs[0].x_label)
        ax.set_ylabel(f"{info.label} (mean, pointwise 95% CI)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return fig


def _final_vs_field(
    runs: list[Run], metric: str, info: MetricInfo, x: str, by: list[str] | None = None
):
    fig, ax = plt.subplots(figsize=(6.5, 4.4), constrained_layout=True)
    points = final_points(runs, metric, x, by)
    colors = agent_colors(points)
    floor = _log_floor([np.concatenate(p[1:]) for p in points.values()], info.scale)
    for label, (xs, mean, lo, hi) in points.items():
        _errorbars(ax, xs, mean, lo, hi, colors[label], label, floor, line=True)
    ax.set_yscale(info.scale)
    ax.set_xlabel(x)
    ax.set_ylabel(f"{info.label} (mean, 95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _final_points_figure(
    runs: list[Run], metric: str, info: MetricInfo, by: list[str] | None = None
):
    labels, stats = [], []
    if by:
        for row in grouped_rows(runs, by, [metric]):
            f = row.final[metric]
            labels.append(row.label)
            stats.append((f["mean"], _bound(f["ci_low"]), _bound(f["ci_high"])))
    else:
        for run, extra in zip(runs, _distinct_overrides(runs), strict=True):
            for agent, a in run.summary["agents"].items():
                f = a["final"][metric]
                labels.append(f"{agent} ({', '.join(extra)})" if extra else agent)
                stats.append((f["mean"], _bound(f["ci_low"]), _bound(f["ci_high"])))
    fig, ax = plt.subplots(
        figsize=(max(4.5, 1.0 + 0.9 * len(labels)), 4.4), constrained_layout=True
    )
    mean, lo, hi = np.asarray(stats, np.float64).T
    floor = _log_floor([np.concatenate([mean, lo, hi])], info.scale)
    colors = agent_colors(labels)
    for i, label in enumerate(labels):
        one = slice(i, i + 1)
        _errorbars(
            ax, np.array([i]), mean[one], lo[one], hi[one], colors[label], None, floor, False
        )
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 4 else 0, ha="right")
    ax.set_yscale(info.scale)
    ax.set_ylabel(f"{info.label} (mean, 95% CI)")
    ax.grid(alpha=0.3, axis="y")
    return fig


def _log_floor(values: list[np.ndarray], scale: str) -> float | None:
    """On a log axis: half the smallest positive value drawn (where bars at 0 start)."""
    if scale != "log":
        return None
    v = np.concatenate(values)
    v = v[np.isfinite(v) & (v > 0)]
    return float(v.min()) / 2 if v.size else 1e-3


def _errorbars(ax, xs, mean, lo, hi, color, label, floor, line: bool) -> None:
    """Means with [lo, hi] bars; on a log axis (floor set) a zero mean is a "v" at hi, its bar
    drawn from the floor."""
    if floor is not None:
        lo = np.maximum(lo, floor)
        zero = ~(mean > 0)
        ax.plot(xs[zero], hi[zero], "v", color=color, ms=7)
        ax.vlines(xs[zero], lo[zero], hi[zero], color=color, lw=1.6)
        mean = np.where(zero, np.nan, mean)
    yerr = np.nan_to_num(np.stack([mean - lo, hi - mean]))
    fmt = "o-" if line else "o"
    ax.errorbar(xs, mean, yerr=yerr, fmt=fmt, color=color, label=label, capsize=3, lw=1.6)


# --------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="regretlab-plot", description="Plot saved runs (no recomputation)."
    )
    ap.add_argument("dirs", nargs="+", help="run directories or multirun directories")
    ap.add_argument(
        "-o",
        "--out",
        help="output file (default: <first dir>/<metric>[_vs_<x>].png; with several dirs"
        " <first dir>/<metric>[_vs_<x>]_compare.png)",
    )
    ap.add_argument("--metric", help="metric to plot (default: the run's headline metric)")
    ap.add_argument(
        "--x",
        help="config field swept across the runs (dotted: horizon, env.budget): plot the"
        " metric's final value against it",
    )
    ap.add_argument(
        "--by",
        action="append",
        metavar="FIELD",
        help="one curve (or line, or point) per value of `agent` or a config field (dotted:"
        " env.K); repeat for several; the seeds of the runs in a group are pooled",
    )
    ap.add_argument(
        "--title", help="figure title (default: the runs' own, e.g. T = 10,000, 100 seeds)"
    )
    ap.add_argument(
        "--overwrite",
        action="store_true",
        help="allow writing over a run's own figure (<metric>.png beside its summary.json)",
    )
    ap.add_argument(
        "--partial",
        action="store_true",
        help="leave unfinished run directories out instead of stopping",
    )
    args = ap.parse_args(argv)
    try:
        unfinished = unfinished_runs(args.dirs)
        if unfinished and not args.partial:
            more = f" (and {len(unfinished) - 1} more)" if len(unfinished) > 1 else ""
            raise ValueError(
                f"{unfinished[0]}{more}: an unfinished run (killed, still running or half-written);"
                " rerun its command to finish it, or pass --partial to leave it out"
            )
        runs = find_runs(args.dirs)
        metric = args.metric or runs[0].headline
        _check_metric(runs, metric, args.x is not None)
        if args.by:
            check_by(runs, args.by)
        if args.x is not None:
            final_points(runs, metric, args.x, args.by)  # one-line errors before drawing
        stem = metric if args.x is None else f"{metric}_vs_{args.x}"
        if args.out:
            out = Path(args.out)
        elif len(args.dirs) > 1:
            out = Path(args.dirs[0]) / f"{stem}_compare.png"
        else:
            out = Path(args.dirs[0]) / f"{stem}.png"
        _check_not_a_runs_figure(out, runs, args.overwrite)
        if args.by and not args.x and runs[0].metric_info(metric).kind == CURVE:
            grouped_curves(runs, metric, args.by)  # one-line errors before drawing
    except (FileNotFoundError, ValueError) as e:
        print(f"regretlab-plot: error: {e}", file=sys.stderr)
        return 2
    print(plot_runs(runs, out, metric, title=args.title, x=args.x, by=args.by))
    return 0


def _check_not_a_runs_figure(out: Path, runs: list[Run], overwrite: bool) -> None:
    """ValueError when `out` is an existing run's own figure (``<metric>.png`` beside its
    summary.json) and the plot is not of that run alone (a re-plot), unless `overwrite`."""
    summary = out.parent / SUMMARY_FILE
    if overwrite or not out.is_file() or not summary.is_file():
        return
    try:
        own = {*json.loads(summary.read_text()).get("metrics", {}), "regret"}
    except (OSError, ValueError):
        own = {"regret"}
    if out.suffix != ".png" or out.stem not in own:
        return  # not a figure the run drew itself
    owner = out.parent.resolve()
    if len(runs) == 1 and runs[0].path.resolve() == owner:
        return  # re-plotting the run itself
    raise ValueError(
        f"{out} is the figure of the run in {out.parent}; name another file with -o, or pass"
        " --overwrite"
    )


def _check_metric(runs: list[Run], metric: str, final: bool) -> None:
    """ValueError naming the first run that lacks `metric` (as a curve or a final value)."""
    for r in runs:
        finals = r.final_names()
        curve = r.metric_info(metric).kind == CURVE and metric in r.metrics.columns
        if metric not in finals and (final or not curve):
            known = ", ".join(dict.fromkeys([*finals, *r.metrics.columns[3:]]))
            raise ValueError(f"--metric {metric!r} is not a metric of {r.path} ({known})")


if __name__ == "__main__":
    sys.exit(main())
