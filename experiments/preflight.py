"""Check a `regretlab` command line before Hydra runs it: one line per mistake, exit 2.

Hydra reports its own errors (a value of the wrong type, a misspelt key, an unknown config) in
several lines with exit status 1, and a multirun meets a bad job only when that job starts. The
`regretlab` console script (`cli`) therefore composes the configuration first, with Hydra's
compose API, and:

* rewrites an exact integer in scientific notation for an integer field (``horizon=1e15``) to
  its integer digits, which Hydra's int fields would refuse;
* turns Hydra's errors into one line naming the field (``horizon: must be an integer (got
  '2.5')``, ``horizn: not a field of the config (did you mean horizon?)``, ``agents: no config
  'nope' (one of: ...)``);
* refuses a run directory that is empty or cannot be written;
* for a multirun, composes and validates *every* job (`experiments.run.prepare`, which traces
  each agent's step abstractly) and lists all bad jobs, one line each, before any job runs: a
  sweep either runs whole or not at all, so no result is computed that a rerun after fixing the
  command would have to throw away or mix with another config.

Anything it cannot judge (Hydra's informational flags, other config directories, sweep syntax
other than comma lists and ranges) is left to Hydra.
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import os
import re
import sys
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path

from experiments.config import ConfigError

INT_FIELDS = ("horizon", "seeds", "seed", "record.points", "chunk_size")  # int-typed fields
_INFO_FLAGS = (
    "-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "-sc", "--shell-completion",
    "--version", "-p", "--package", "-cp", "--config-path", "-cn", "--config-name",
    "-cd", "--config-dir", "--experimental-rerun", "-r", "--resolve",
)  # fmt: skip
_LAUNCHER_EXTRAS = {  # Hydra launcher plugins and the pyproject extra that installs each
    "joblib": "joblib", "submitit_local": "slurm", "submitit_slurm": "slurm", "ray": "ray",
}  # fmt: skip
_SCIENTIFIC = re.compile(r"^[+-]?\d+(\.\d*)?[eE][+-]?\d+$")


def integer_literals(args: list[str]) -> list[str]:
    """`args` with ``FIELD=1e15`` (FIELD an integer field, the value an exact integer) written
    as ``FIELD=1000000000000000``; comma-separated sweep values likewise."""
    out = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and key.lstrip("+~") in INT_FIELDS:
            value = ",".join(_as_integer(v) for v in value.split(","))
        out.append(f"{key}{eq}{value}")
    return out


def _as_integer(value: str) -> str:
    if not _SCIENTIFIC.match(value.strip()):
        return value
    try:
        exact = Decimal(value.strip())
    except InvalidOperation:
        return value
    return str(int(exact)) if exact == exact.to_integral_value() else value


def hydra_error_line(e: BaseException) -> str:
    """One line for an error of Hydra's composition, naming the field where there is one."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(e, MissingConfigException):
        missing = str(e.missing_cfg_file or "")
        # "Could not find 'hydra/launcher/nope'" names the group and the config; the
        # "In 'hydra/config'" that may precede it names the config that asked for it
        match = re.search(r"Could not find '([\w./-]+)/([\w.-]+)'", str(e)) or re.search(
            r"'([\w./-]+)/([\w.-]+)'", str(e)
        )
        group, name = (match.group(1), match.group(2)) if match else (missing, "")
        options = _group_options(group)
        known = f" (one of: {', '.join(options)})" if options else ""
        extra = _LAUNCHER_EXTRAS.get(name, "") if group == "hydra/launcher" else ""
        hint = f"; install it: uv sync --extra {extra}" if extra and name not in options else ""
        return f"{group}: no config {name!r}{known}{hint}"
    if isinstance(e, OverrideParseException):
        return f"overrides: cannot parse ({_first_line(e)}); see hydra.cc override grammar"
    cause = _omegaconf_cause(e)
    if cause is not None:
        key = cause.full_key
        text = _first_line(cause)
        if "not in struct" in text or "not in '" in text:
            return f"{key}: not a field of the config{_did_you_mean(cause)}"
        if "could not be converted to Integer" in text:
            got = re.search(r"Value '(.*)' of type", text)
            return f"{key}: must be an integer (got {got.group(1) if got else text!r})"
        if "is not a valid bool" in text:
            got = re.search(r"Value '(.*)' is not", text)
            return f"{key}: must be true or false (got {got.group(1) if got else text!r})"
        return f"{key}: {text}"
    return _first_line(e)


def _omegaconf_cause(e: BaseException):
    c: BaseException | None = e
    while c is not None:
        if getattr(c, "full_key", None):
            return c
        c = c.__cause__ or c.__context__
    return None


def _did_you_mean(cause) -> str:
    parent = getattr(cause, "parent_node", None)
    key = str(cause.full_key).rsplit(".", 1)[-1]
    keys = [str(k) for k in parent] if parent is not None else []
    close = difflib.get_close_matches(key, keys, n=1)
    return f" (did you mean {close[0]}?)" if close else f" (has: {', '.join(keys)})" if keys else ""


def _group_options(group: str) -> list[str]:
    try:
        from hydra.core.global_hydra import GlobalHydra

        loader = GlobalHydra.instance().config_loader()
        return sorted(loader.get_group_options(group))
    except Exception:
        return []


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def check_run_dir(path: str, field: str) -> None:
    """A run directory must be named and creatable: the missing part of `path` is created and
    removed again (permissions alone do not tell, e.g. under /proc or on a read-only mount)."""
    if not str(path).strip():
        raise ConfigError(f"{field}: must name a directory (got an empty path)")
    p = Path(path).expanduser().absolute()
    missing = [q for q in (p, *p.parents) if not q.exists()]
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".regretlab-write-check-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"{field}: cannot write {p} ({e.strerror or e})") from None
    finally:
        for q in missing:  # deepest first
            with contextlib.suppress(OSError):
                q.rmdir()


def jobs_of(overrides: list[str], multirun: bool) -> list[list[str]] | None:
    """The override lists of the jobs a command runs (Hydra's basic sweeper: the product of the
    comma-list and range sweeps, the first varying slowest), or None when the sweep syntax is
    beyond this check."""
    if not multirun:
        return [overrides]
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for o in parsed:
        key = o.get_key_element()
        if not o.is_sweep_override():
            choices.append([f"{key}={o.get_value_element_as_str()}"])
            continue
        try:
            choices.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        except Exception:  # glob or interval sweeps (optimiser plugins): leave them to Hydra
            return None
    return [list(job) for job in itertools.product(*choices)]


def preflight(args: list[str], conf_dir: str, prepare: Callable) -> list[str]:
    """The one-line errors of the command line `args` ([] when it may run); `prepare(cfg,
    overrides)` validates one job's composed config (`experiments.run.prepare`)."""
    from hydra import compose, initialize_config_dir

    from experiments.sweep import expand as expand_sweep

    multirun = any(a in ("-m", "--multirun") for a in args)
    overrides = [a for a in args if not a.startswith("-")]
    try:
        jobs = jobs_of(overrides, multirun)
    except Exception as e:
        return [hydra_error_line(e)]
    if jobs is None:
        return []
    errors = []
    varying = [i for i in range(len(jobs[0])) if len({job[i] for job in jobs}) > 1]
    with initialize_config_dir(config_dir=conf_dir, version_base="1.3", job_name="regretlab"):
        for number, job in enumerate(jobs):
            label = " ".join(job[i] for i in varying)
            where = f"job {number} ({label}): " if multirun and len(jobs) > 1 else ""
            try:
                cfg = compose("config", overrides=job, return_hydra_config=True)
                field = "hydra.sweep.dir" if multirun else "hydra.run.dir"
                check_run_dir(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir, field)
                if multirun:  # a single run is validated by `main` itself, before compiling
                    from omegaconf import OmegaConf, open_dict

                    with open_dict(cfg):
                        del cfg["hydra"]
                    OmegaConf.set_struct(cfg, True)
                    sweep_jobs = expand_sweep(cfg, job, Path("."))
                    for sweep_job in sweep_jobs or [None]:
                        prepare(sweep_job.config if sweep_job else cfg, job)
            except ConfigError as e:
                errors.append(f"{where}{e}")
            except Exception as e:
                errors.append(f"{where}{hydra_error_line(e)}")
    return errors


def run_checked(
    main: Callable, conf_dir: str, prepare: Callable, argv: list[str] | None = None
) -> None:
    """Preflight the command line, then hand it to Hydra's `main` (exit 2 on mistakes)."""
    argv = list(sys.argv if argv is None else argv)
    args = integer_literals(argv[1:])
    sys.argv = [argv[0], *args]
    if not any(a.split("=", 1)[0] in _INFO_FLAGS for a in args):
        errors = preflight(args, conf_dir, prepare)
        if errors:
            for line in errors:
                print(f"regretlab: error: {line}", file=sys.stderr)
            sys.exit(2)
    main()
