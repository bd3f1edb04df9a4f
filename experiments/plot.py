"""Regret curves: mean over seeds with a 95% Student-t band, linear and log-log panels.

``regretlab-plot DIR...`` re-plots saved run directories (or multirun directories) without
recomputing anything. Each agent keeps its colour across figures.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from experiments.results import Run, atomic_write, find_runs
from experiments.stats import mean_ci
from experiments.tables import _distinct_overrides

_KNOWN = [
    "ucb1",
    "kl_ucb",
    "thompson",
    "epsilon_greedy",
    "etc",
    "moss",
    "gaussian_thompson",
    "epsilon_greedy_decaying",
]


def agent_color(name: str) -> tuple:
    """A colour fixed by the agent's name (known agents get distinct tab10/tab20 colours)."""
    base = name.split(" ")[0]
    if base in _KNOWN:
        return plt.get_cmap("tab10")(_KNOWN.index(base) % 10)
    return plt.get_cmap("tab20")(zlib.crc32(base.encode()) % 20)


def curves(run: Run, metric: str = "regret"):
    """{agent: (t, mean, ci_low, ci_high)} from a run's metrics table."""
    df = run.metrics
    out = {}
    for agent, g in df.groupby("agent", observed=True, sort=False):
        wide = g.pivot(index="seed", columns="t", values=metric)
        mean, lo, hi = mean_ci(wide.to_numpy(), axis=0)
        out[str(agent)] = (wide.columns.to_numpy(), mean, lo, hi)
    return out


def plot_runs(runs: list[Run], out: Path, metric: str = "regret", title: str | None = None) -> Path:
    """Draw every agent of every run in one figure (linear and log-log panels); save to `out`."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    extras = _distinct_overrides(runs)
    styles = ["-", "--", ":", "-."]
    for i, (run, extra) in enumerate(zip(runs, extras, strict=True)):
        for agent, (t, mean, lo, hi) in curves(run, metric).items():
            label = f"{agent} ({', '.join(extra)})" if extra else agent
            color = agent_color(agent)
            for ax in axes:
                ax.plot(t, mean, styles[i % len(styles)], color=color, label=label, lw=1.6)
                ax.fill_between(t, lo, hi, color=color, alpha=0.2, lw=0)
    axes[0].set_title("linear")
    axes[1].set_title("log-log")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("round t")
        ax.set_ylabel(f"cumulative {metric} (mean, 95% CI)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    out = Path(out)
    atomic_write(out, lambda p: fig.savefig(p, dpi=120, format=out.suffix.lstrip(".") or "png"))
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="regretlab-plot", description="Plot saved runs (no recomputation)."
    )
    ap.add_argument("dirs", nargs="+", help="run directories or multirun directories")
    ap.add_argument("-o", "--out", help="output file (default: <first dir>/<metric>.png)")
    ap.add_argument("--metric", help="metric to plot (default: the run's headline metric)")
    args = ap.parse_args(argv)
    try:
        runs = find_runs(args.dirs)
    except FileNotFoundError as e:
        print(f"regretlab-plot: error: {e}", file=sys.stderr)
        return 2
    metric = args.metric or runs[0].summary.get("metric", "regret")
    missing = [str(r.path) for r in runs if metric not in r.metrics.columns]
    if missing:
        print(
            f"regretlab-plot: error: --metric {metric!r} is not recorded in {missing[0]}",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out) if args.out else Path(args.dirs[0]) / f"{metric}.png"
    print(plot_runs(runs, out, metric))
    return 0


if __name__ == "__main__":
    sys.exit(main())
