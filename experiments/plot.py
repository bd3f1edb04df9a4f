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

Intervals follow the metric's support (`experiments.stats.interval`): Student t, a BCa bootstrap
for non-negative metrics, Clopper–Pearson for indicators. On a log axis a mean of 0 (no error in n
seeds) cannot be drawn: its interval's upper end is marked with a "v" and the bar starts at the
bottom of the axis. Each agent keeps its colour across figures (a hash of its name).
"""

from __future__ import annotations

import argparse
import sys
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from experiments.protocol import CURVE, MetricInfo
from experiments.results import Run, atomic_write, find_runs
from experiments.stats import interval
from experiments.tables import _distinct_overrides

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


def config_value(config: dict, path: str) -> Any:
    """The value at a dotted `path` ("env.budget") of a resolved config; KeyError if absent."""
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def final_points(runs: list[Run], metric: str, x: str) -> dict[str, tuple[np.ndarray, ...]]:
    """{series: (x, mean, ci_low, ci_high)} sorted by x: one series per agent (plus the run's
    other distinguishing overrides), read from each run's summary.

    Raises ValueError (one line) when a run lacks the field or the metric, or x is not a number.
    """
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
) -> Path:
    """Draw `metric` (default: the first run's headline) of every agent of every run; save to
    `out`. Curves against the env's x-axis; with `x`, final values against that config field;
    a final metric without `x`, one point per agent."""
    metric = metric or runs[0].headline
    info = runs[0].metric_info(metric)
    if x is not None:
        fig = _final_vs_field(runs, metric, info, x)
    elif info.kind == CURVE and all(metric in r.metrics.columns for r in runs):
        fig = _curves_figure(runs, metric, info)
    else:
        fig = _final_points_figure(runs, metric, info)
    if title:
        fig.suptitle(title)
    out = Path(out)
    atomic_write(out, lambda p: fig.savefig(p, dpi=120, format=out.suffix.lstrip(".") or "png"))
    plt.close(fig)
    return out


def _curves_figure(runs: list[Run], metric: str, info: MetricInfo):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    extras = _distinct_overrides(runs)
    styles = ["-", "--", ":", "-."]
    data = [curves(run, metric) for run in runs]
    colors = agent_colors(a for d in data for a in d)
    for i, (d, extra) in enumerate(zip(data, extras, strict=True)):
        for agent, (t, mean, lo, hi) in d.items():
            label = f"{agent} ({', '.join(extra)})" if extra else agent
            for ax in axes:
                ax.plot(t, mean, styles[i % len(styles)], color=colors[agent], label=label, lw=1.6)
                ax.fill_between(t, lo, hi, color=colors[agent], alpha=0.2, lw=0)
    axes[0].set_yscale(info.scale)
    axes[0].set_title("linear" if info.scale == "linear" else "log y")
    axes[1].set_title("log-log")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel(runs[0].x_label)
        ax.set_ylabel(f"{info.label} (mean, 95% CI)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return fig


def _final_vs_field(runs: list[Run], metric: str, info: MetricInfo, x: str):
    fig, ax = plt.subplots(figsize=(6.5, 4.4), constrained_layout=True)
    points = final_points(runs, metric, x)
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


def _final_points_figure(runs: list[Run], metric: str, info: MetricInfo):
    extras = _distinct_overrides(runs)
    labels, stats = [], []
    for run, extra in zip(runs, extras, strict=True):
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
    ap.add_argument("-o", "--out", help="output file (default: <first dir>/<metric>[_vs_<x>].png)")
    ap.add_argument("--metric", help="metric to plot (default: the run's headline metric)")
    ap.add_argument(
        "--x",
        help="config field swept across the runs (dotted: horizon, env.budget): plot the"
        " metric's final value against it",
    )
    args = ap.parse_args(argv)
    try:
        runs = find_runs(args.dirs)
        metric = args.metric or runs[0].headline
        _check_metric(runs, metric, args.x is not None)
        if args.x is not None:
            final_points(runs, metric, args.x)  # one-line errors before drawing
    except (FileNotFoundError, ValueError) as e:
        print(f"regretlab-plot: error: {e}", file=sys.stderr)
        return 2
    stem = metric if args.x is None else f"{metric}_vs_{args.x}"
    out = Path(args.out) if args.out else Path(args.dirs[0]) / f"{stem}.png"
    print(plot_runs(runs, out, metric, x=args.x))
    return 0


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
