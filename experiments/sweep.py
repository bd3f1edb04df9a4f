"""Sweeps inside one program: ``regretlab sweep.agents.ucb1.c=[0.5,1,2]``.

A ``sweep.PATH=[v1,v2,...]`` override lists values of the config field PATH (under ``env`` or
``agents``); several fields sweep their Cartesian product, the first listed varying slowest (as
Hydra's basic sweeper orders a multirun's jobs). Each combination is a *job*: the config with
the field set, run directory ``<run dir>/<job number>`` holding what the multirun job would hold
(``.hydra/config.yaml`` and ``.hydra/overrides.yaml``, ``metrics.parquet``, ``final.parquet``,
``summary.json``, the figure), so `regretlab-plot`, `regretlab-table` and resume treat both alike.
The jobs' configs are validated before anything is compiled; configs that differ only in float
hyperparameters or the env's params values then run as one program, vmapped over a config axis
beside the seed axis (`experiments.simulate.simulate_sweep`).
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments.config import ConfigError, one_line

SWEEPABLE = ("env", "agents")  # groups whose fields may be swept inside one program
_ABSENT = object()


@dataclass
class Job:
    """One combination of swept values: its config, Hydra overrides and run directory."""

    number: int
    directory: Path
    config: DictConfig
    overrides: list[str]  # as the multirun's job would record them
    values: dict[str, Any]  # swept field -> its value in this job

    @property
    def label(self) -> str:
        return " ".join(f"{k}={_hydra_value(v)}" for k, v in self.values.items())


def swept_fields(sweep: Any) -> dict[str, list]:
    """The ``sweep`` node flattened to {field path: values}."""
    if not isinstance(sweep, dict):
        raise ConfigError(
            "sweep: must map config fields to lists of values,"
            f" e.g. sweep.agents.ucb1.c=[0.5,1,2] (got {sweep!r})"
        )
    fields: dict[str, list] = {}

    def walk(prefix: str, node: dict) -> None:
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and not value:
                raise ConfigError(
                    f"sweep.{path}: names no field to sweep, e.g. sweep.{path}.FIELD=[1,2]"
                    " (got {})"
                )
            if isinstance(value, dict):
                walk(path, value)
            elif isinstance(value, list) and value:
                fields[path] = value
            else:
                raise ConfigError(
                    f"sweep.{path}: must be a non-empty list of values,"
                    f" e.g. sweep.{path}=[1,2] (got {value!r})"
                )

    walk("", sweep)
    return fields


def expand(cfg: DictConfig, overrides: list[str], out_dir: Path) -> list[Job]:
    """The jobs of `cfg`'s sweep (an empty or absent ``sweep``: no jobs), checked field by
    field; a sweep that names no value (``sweep=5``, ``sweep.agents={}``) is a ConfigError."""
    node = cfg.get("sweep")
    if node is None:
        return []
    if not OmegaConf.is_dict(node):
        swept_fields(node)  # raises: not a mapping of fields to values
    raw = OmegaConf.to_container(node, resolve=True)
    if not raw:
        return []
    fields = swept_fields(raw)
    for path in fields:
        _check_field(cfg, path)
    base = _canonical(overrides)
    jobs = []
    for number, combo in enumerate(itertools.product(*fields.values())):
        values = dict(zip(fields, combo, strict=True))
        config = copy.deepcopy(cfg)
        config.sweep = {}
        for path, value in values.items():
            try:
                OmegaConf.update(config, path, value, merge=False)
            except Exception as e:  # a typed field given a value of another type
                raise ConfigError(f"sweep.{path}: cannot take {value!r} ({one_line(e)})") from None
        mine = []  # the sweep's overrides replaced, in place, by this job's values
        for o in base:
            key = _override_key(o)
            if key.split(".")[0] == "sweep":
                mine += [
                    f"{k}={_hydra_value(v)}"
                    for k, v in values.items()
                    if f"sweep.{k}" == key or f"sweep.{k}".startswith(key + ".")
                ]
            elif key not in values:
                mine.append(o)
        jobs.append(Job(number, out_dir / str(number), config, mine, values))
    return jobs


def write_job_config(job: Job) -> None:
    """``.hydra/config.yaml`` and ``.hydra/overrides.yaml`` of a job, as Hydra writes them."""
    from experiments.results import atomic_write

    hydra_dir = job.directory / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    config_text = OmegaConf.to_yaml(job.config)
    overrides_text = OmegaConf.to_yaml(OmegaConf.create(job.overrides))
    atomic_write(hydra_dir / "config.yaml", lambda p: p.write_text(config_text))
    atomic_write(hydra_dir / "overrides.yaml", lambda p: p.write_text(overrides_text))


def _check_field(cfg: DictConfig, path: str) -> None:
    group = path.split(".")[0]
    if group not in SWEEPABLE or "." not in path:
        raise ConfigError(
            f"sweep.{path}: only fields of env and agents are swept inside one program;"
            f" sweep {path} with a multirun: regretlab -m {path}=VALUE1,VALUE2"
        )
    if OmegaConf.select(cfg, path, default=_ABSENT) is _ABSENT:
        parent = path.rsplit(".", 1)[0]
        node = OmegaConf.select(cfg, parent, default=None)
        known = (
            ", ".join(str(k) for k in node if k != "_target_")
            if isinstance(node, DictConfig)
            else ""
        )
        has = f"{parent} has: {known}" if known else f"{parent} is not in the config"
        raise ConfigError(f"sweep.{path}: not a field of the config ({has})")


def _canonical(overrides: list[str]) -> list[str]:
    """Overrides as a multirun's job records them (Hydra's parser writes ``false`` as
    ``False``); an override that does not parse is kept as it is."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    out = []
    for o in overrides:
        try:
            parsed = parser.parse_override(o)
            out.append(f"{parsed.get_key_element()}={parsed.get_value_element_as_str()}")
        except Exception:
            out.append(o)
    return out


def _override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def _hydra_value(value: Any) -> str:
    """`value` in Hydra's override syntax."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    return str(value)
