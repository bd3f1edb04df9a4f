"""Tables of final metrics, mean with 95% CI over seeds, in Markdown or LaTeX; best marked.

``regretlab-table DIR...`` tabulates saved run directories (or multirun directories) without
recomputing anything. Each metric is read as its environment declares it (`MetricInfo`, recorded
in summary.json): its interval follows its support (Student t, BCa bootstrap for non-negative
metrics, Clopper–Pearson for indicators), a non-negative metric gets a median column beside its
mean, and the best mean of a column is the lowest or the highest as the metric's direction says.
``--reference AGENT`` adds, per metric, the ratio of each agent's mean to the reference agent's
in the same run, with a paired interval over the seeds (`stats.ratio_ci`, from final.parquet).

Rows are compared only with rows of the same environment: the best mean of a column is marked
among the rows whose runs share the resolved ``env`` config and the horizon (`env_key`), never
across rows of different environments (a multirun over ``env.K``), and a row that pools runs of
several environments is never marked.

``--by FIELD`` (repeatable) groups rows by the agent (``agent``) or any field of the resolved config
(a dotted path: ``env.K``, ``agents.ucb1.c``, ``horizon``): one row per distinct combination, its
per-seed final values (``final.parquet``) pooled over the runs of the group and summarised with
the metric's interval (`grouped_rows`). Values of the same master ``seed`` and seed index met the
same draws (copies of a run, the jobs of one sweep): they are averaged into one cluster value
first, and the interval is over the clusters (`cluster_means`). ``--index FILE`` writes the
results index: one row per run and agent (overrides and each overridden field as a column,
status, final metrics with their intervals, timings) as Parquet for pandas, polars or DuckDB
(`results_index`); unfinished runs get a row with their status. Without ``--index`` or
``--partial``, an unfinished run directory (killed, or still running) is an error, never
silently left out.

Runs whose environment declared an exact oracle for a curve metric (summary.json: an agent's
``oracle``) get a second table, the self-check, recomputed here from metrics.parquet
(`results.self_check`): the per-step mean over t and seeds beside the oracle's mean with a
z-score, and the maximum over t of the mean over seeds beside the oracle's maximum with their
ratio, and the mean over seeds at the oracle's argmax with a z-score.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.protocol import INDICATOR, NONNEGATIVE, MetricInfo
from experiments.results import (
    Run,
    atomic_write,
    find_runs,
    self_check,
    summarize_values,
    unfinished_runs,
)
from experiments.stats import ratio_ci


@dataclass
class Row:
    label: str  # agent name, plus the run's distinguishing overrides in a multirun
    final: dict  # metric -> {"mean", "ci_low", "ci_high"} (+ "median" for non-negative metrics)
    steps_per_second: float | None = None
    ratios: dict = field(default_factory=dict)  # metric -> (ratio, low, high) to the reference
    # rows are compared (best marked) only with rows of the same group (`env_key`); None: a row
    # pooled over several environments, compared with nothing
    group: str | None = ""
    keys: dict[str, str] | None = None  # --by: field -> value, shown as leading columns
    runs: int = 1  # (run, agent) members pooled into the row (per metric: its summary's "runs")


def env_key(run: Run) -> str:
    """What makes two runs' numbers comparable: the same resolved env config and horizon."""
    config = run.summary.get("config") or {}
    return json.dumps(
        {"env": config.get("env"), "horizon": run.summary.get("horizon")}, sort_keys=True
    )


def config_value(config: dict, path: str) -> Any:
    """The value at a dotted `path` ("env.budget") of a resolved config; KeyError if absent."""
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


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
        group = env_key(run)
        for name, a in run.summary["agents"].items():
            label = f"{name} ({', '.join(extra)})" if extra else name
            rows.append(
                Row(label, a["final"], a.get("steps_per_second"), ratios.get(name, {}), group)
            )
    return rows


def check_by(runs: list[Run], by: list[str]) -> None:
    """ValueError (one line) for a --by field that no run's config has."""
    for f in by:
        if f == "agent":
            continue
        configs = [r.summary.get("config") or {} for r in runs]
        if not any(_has(c, f) for c in configs):
            top = ", ".join(sorted(k for k in configs[0] if k != "hydra")) if configs else ""
            raise ValueError(
                f"--by: {f!r} is not a field of the runs' config (agent, or a dotted path into:"
                f" {top})"
            )


def _has(config: dict, path: str) -> bool:
    try:
        config_value(config, path)
    except KeyError:
        return False
    return True


def by_value(run: Run, agent: str, f: str) -> Any:
    """The value of the --by field `f` for `agent` of `run` (None where its config lacks it)."""
    if f == "agent":
        return agent
    try:
        return config_value(run.summary.get("config") or {}, f)
    except KeyError:
        return None


def _show(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and np.isfinite(v) and v == int(v) and abs(v) < 1e15:
        return str(v)
    return json.dumps(v) if isinstance(v, list | dict) else str(v)


def _order(key: tuple) -> tuple:
    """Sort key of a group: numbers by value, before strings."""
    return tuple(
        (0, float(v), "")
        if isinstance(v, int | float) and not isinstance(v, bool)
        else (1, 0.0, _show(v))
        for v in key
    )


def grouped_rows(runs: list[Run], by: list[str], metrics: list[str] | None = None) -> list[Row]:
    """One row per distinct combination of the `by` fields (``agent`` or a dotted config path)
    over every agent of every run. A group of one (run, agent) keeps its summary's numbers; a
    larger group pools the per-seed final values of its members (``final.parquet``) by clusters
    of the same (master seed, seed index) and summarises the cluster means with each metric's
    interval (`_pooled`). A group whose runs differ in env or horizon (`env_key`) is compared
    with no other row."""
    check_by(runs, by)
    groups: dict[tuple, list[tuple[Run, str]]] = {}  # shown values -> members
    raw: dict[tuple, tuple] = {}  # shown values -> the values (numbers sort as numbers)
    for run in runs:
        for agent in run.summary["agents"]:
            values = tuple(by_value(run, agent, f) for f in by)
            key = tuple(_show(v) for v in values)
            groups.setdefault(key, []).append((run, agent))
            raw.setdefault(key, values)
    rows = []
    for key in sorted(groups, key=lambda k: _order(raw[k])):
        members = groups[key]
        envs = {env_key(run) for run, _ in members}
        group = envs.pop() if len(envs) == 1 else None
        label = group_label(dict(zip(by, key, strict=True)))
        if len(members) == 1:
            run, agent = members[0]
            a = run.summary["agents"][agent]
            final, speed = a["final"], a.get("steps_per_second")
        else:
            final, speed = _pooled(members, metrics), None
        rows.append(
            Row(label, final, speed, {}, group, dict(zip(by, key, strict=True)), len(members))
        )
    return rows


def group_label(keys: dict[str, str]) -> str:
    """``ucb1 (env.K=3)`` when the agent is a --by field (it then keeps its colour in figures),
    else ``env.K=3, horizon=100``."""
    rest = ", ".join(f"{f}={v}" for f, v in keys.items() if f != "agent")
    if "agent" not in keys:
        return rest
    return f"{keys['agent']} ({rest})" if rest else keys["agent"]


def master_seed(run: Run) -> Any:
    """The master ``seed`` of `run`'s resolved config (None where it records none)."""
    return (run.summary.get("config") or {}).get("seed")


def cluster_means(parts: list[tuple[Any, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, int]:
    """Pool per-seed values by clusters: `parts` holds per member (master seed, seed indices
    (n,), values (n, ...)); values with the same (master seed, seed index) form one cluster.

    Seed index i of a run with master seed s draws from ``split(key(s), seeds)[i]``, so two
    members with the same (s, i) met the same draws (the same env randomness for every agent and
    config; with JAX's default key layout the first n keys do not depend on the seeds count):
    copies (runs differing only in ``chunk_size``, a display setting or the seeds count, another
    agent's setting) give the same value, and jobs of a sweep correlated ones. Averaging within a
    cluster first and taking the interval over clusters counts each draw once; clusters of
    different master seeds are independent. Returns (the cluster means (clusters, ...), in order
    of first appearance; the number of values pooled)."""
    keys: dict[tuple[str, int], int] = {}
    rows = []
    for seed, index, _ in parts:
        s = json.dumps(seed)
        for i in np.asarray(index, np.int64).tolist():
            rows.append(keys.setdefault((s, i), len(keys)))
    values = np.concatenate([np.asarray(v, np.float64) for _, _, v in parts])
    which = np.asarray(rows, np.int64)
    sums = np.zeros((len(keys), *values.shape[1:]))
    np.add.at(sums, which, values)
    counts = np.bincount(which, minlength=len(keys)).reshape(-1, *([1] * (values.ndim - 1)))
    return sums / counts, int(values.shape[0])


def _pooled(members: list[tuple[Run, str]], metrics: list[str] | None) -> dict:
    """{metric: summary} of the per-seed final values of `members` pooled by clusters of the
    same (master seed, seed index) (`cluster_means`): the mean and interval are over the
    clusters' means, ``n`` is the number of clusters, ``values`` the number of per-seed values
    and ``runs`` the members that have the metric."""
    names = metrics or list(dict.fromkeys(m for run, _ in members for m in run.final_names()))
    finals = {id(run): run.finals for run, _ in members}
    out = {}
    for m in names:
        have = [(run, agent) for run, agent in members if m in run.final_names()]
        if not have:
            continue
        parts = []
        for run, agent in have:
            df = finals[id(run)]
            rows = df[df["agent"] == agent].sort_values("seed")
            parts.append((master_seed(run), rows["seed"].to_numpy(), rows[m].to_numpy()))
        values, pooled = cluster_means(parts)
        info = have[0][0].metric_info(m)
        mixed = info.support == INDICATOR and np.any((values != 0) & (values != 1))
        if mixed:  # clusters' error rates, no longer 0 or 1: the bootstrap of their mean
            info = info._replace(support=NONNEGATIVE)
        s = summarize_values(values, info)
        if mixed:
            s.pop("median", None)
        out[m] = {**s, "values": pooled, "runs": len(have)}
    return out


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
    keyed = rows[0].keys is not None
    header = [*rows[0].keys, "runs"] if keyed else ["agent"]
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
    # the best of each column among comparable rows only (same group, never None)
    blocks: dict[str, list[Row]] = {}
    for r in rows:
        if r.group is not None:
            blocks.setdefault(r.group, []).append(r)
    best = {
        (m, g): _best(block, m, _lower(m, lower_is_better, infos))
        for m in metrics
        for g, block in blocks.items()
        if len(block) > 1
    }
    if speed:
        header.append("agent-steps/s")
    body = []
    for r in rows:
        lead = [*(r.keys or {}).values(), str(r.runs)] if keyed else [r.label]
        cells = [_escape(c, fmt) for c in lead]
        for m, what in columns:
            b = best.get((m, r.group))
            cells.append(_cell(r, m, what, fmt, b is not None, b))
        if speed:
            cells.append(f"{r.steps_per_second:.3g}" if r.steps_per_second else "")
        body.append(cells)
    note = ""
    if len(blocks) > 1 or any(r.group is None for r in rows):
        note = "\nbest marked only among rows of the same environment (env config and horizon)"
        if any(r.group is None for r in rows):
            note += "; rows pooling several environments are not compared"
    if any(f.get("values", 0) > f.get("n", 0) for r in rows for f in r.final.values()):
        note += (
            "\npooled rows: values of the same master seed and seed index (the same draws) are"
            " averaged into one before the interval, whose n counts these clusters"
        )
    lead = len(rows[0].keys) + 1 if keyed else 1
    if fmt == "latex":
        lines = [
            "\\begin{tabular}{" + "l" * lead + "r" * (len(header) - lead) + "}",
            "\\toprule",
            " & ".join(_escape(h, fmt) for h in header) + " \\\\",
            "\\midrule",
        ]
        lines += [" & ".join(c) + " \\\\" for c in body]
        return "\n".join([*lines, "\\bottomrule", "\\end{tabular}"]) + note.replace("\n", "\n% ")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in body]) + note


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
    # one seed, or all values equal (null ends; a zero std in summaries written before): no
    # spread, no interval (an indicator's exact interval needs none)
    flat = s.get("std") == 0 and s.get("interval") != "clopper-pearson"
    if s["ci_low"] is None or flat:
        n = s.get("n") or 1
        why = "n = 1" if n < 2 else f"all {n} equal"
        cell = f"{_num(s['mean'])} [no interval: {why}]"
    else:
        cell = f"{_num(s['mean'])} [{_num(s['ci_low'])}, {_num(s['ci_high'])}]"
    if s.get("runs", r.runs) != r.runs:  # pooled over the members that have the metric only
        cell += f" ({s['runs']} of {r.runs} runs)"
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


# --------------------------------------------------------------------------- results index
TIMINGS = ("compile_seconds", "run_seconds", "steps_per_second", "steps")


def results_index(runs: list[Run], unfinished: list[Path] = ()) -> pd.DataFrame:
    """The results index: one row per finished run and agent, one per unfinished run directory.

    Columns: ``run`` (its directory), ``status`` (``finished`` or ``unfinished``: killed, still
    running or half-written), ``overrides`` (the job's Hydra overrides, space-separated), one
    column per overridden field (numbers as numbers), ``agent``, ``horizon``, ``seeds``, per
    final metric its ``mean`` (column named by the metric), ``<metric>_ci_low``,
    ``<metric>_ci_high``, then ``compile_seconds``, ``run_seconds``, ``steps_per_second``,
    ``steps`` and ``git_revision``."""
    records = []
    for run in runs:
        base = _index_base(run.path, run.overrides, "finished", run.summary.get("config"))
        base.update(horizon=run.summary.get("horizon"), seeds=run.summary.get("seeds"))
        for agent, a in run.summary["agents"].items():
            rec = {**base, "agent": agent}
            for m, f in a["final"].items():
                rec[m] = f["mean"]
                rec[f"{m}_ci_low"] = f["ci_low"]
                rec[f"{m}_ci_high"] = f["ci_high"]
            rec.update({k: a.get(k) for k in TIMINGS})
            rec["git_revision"] = run.summary.get("git_revision")
            records.append(rec)
    for d in unfinished:
        records.append(_index_base(d, Run(d, {}).overrides, "unfinished"))
    df = pd.DataFrame.from_records(records)
    for c in df.columns:  # one type per column: Parquet needs it
        present = [v for v in df[c] if not _missing(v)]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            df[c] = [None if _missing(v) else str(v) for v in df[c]]
    return df


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _index_base(path: Path, overrides: list[str], status: str, config: dict | None = None) -> dict:
    """The run's columns: path, status, overrides, and each overridden field's value (from the
    resolved `config` where there is one, else as written in the override)."""
    import yaml

    rec: dict[str, Any] = {"run": str(path), "status": status, "overrides": " ".join(overrides)}
    for o in overrides:
        key, eq, value = o.partition("=")
        key = key.lstrip("+~")
        if not eq or key.startswith("hydra."):
            continue
        try:
            rec[key] = config_value(config or {}, key)
        except KeyError:
            try:
                rec[key] = yaml.safe_load(value)
            except yaml.YAMLError:
                rec[key] = value
        if isinstance(rec[key], list | dict):
            rec[key] = json.dumps(rec[key])
    return rec


def write_index(df: pd.DataFrame, out: Path) -> Path:
    """Write the results index `df` as Parquet to `out` (atomically)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda p: df.to_parquet(p, index=False))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="regretlab-table",
        description="Tabulate saved runs (no recomputation): final metrics, mean with its 95%"
        " interval; the best mean marked among rows of the same environment.",
    )
    ap.add_argument("dirs", nargs="+", help="run directories or multirun directories")
    ap.add_argument("--format", choices=("markdown", "latex"), default="markdown")
    ap.add_argument("--metric", action="append", help="metric column(s); default: all")
    ap.add_argument(
        "--by",
        action="append",
        metavar="FIELD",
        help="group rows by `agent` or a config field (dotted: env.K, agents.ucb1.c; repeat for"
        " several), pooling the per-seed values of the runs in each group",
    )
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
    ap.add_argument(
        "--index",
        metavar="FILE",
        type=Path,
        help="also write the results index (one row per run and agent: overrides, status, final"
        " metrics, timings) as Parquet to FILE; unfinished runs are listed with their status",
    )
    ap.add_argument(
        "--partial",
        action="store_true",
        help="leave unfinished run directories out instead of stopping (counted on stderr)",
    )
    args = ap.parse_args(argv)
    try:
        if args.by and args.reference:
            raise ValueError(
                "--by and --reference: not together (ratios pair the seeds of one run)"
            )
        unfinished = unfinished_runs(args.dirs)
        if unfinished and not (args.partial or args.index):
            more = f" (and {len(unfinished) - 1} more)" if len(unfinished) > 1 else ""
            raise ValueError(
                f"{unfinished[0]}{more}: an unfinished run (killed, still running or half-written);"
                " rerun its command to finish it, or pass --partial to leave it out"
            )
        runs = find_runs(args.dirs)
        if args.by:
            rows = grouped_rows(runs, args.by, args.metric)
        else:
            rows = rows_from_runs(runs, args.reference, args.metric)
    except (FileNotFoundError, ValueError) as e:
        print(f"regretlab-table: error: {e}", file=sys.stderr)
        return 2
    except KeyError as e:
        print(f"regretlab-table: error: {e.args[0]}", file=sys.stderr)
        return 2
    if unfinished:
        print(f"regretlab-table: {len(unfinished)} unfinished run(s) left out", file=sys.stderr)
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
    if args.index:
        out = write_index(results_index(runs, unfinished), args.index)
        print(f"results index: {out} ({len(runs)} finished, {len(unfinished)} unfinished runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
