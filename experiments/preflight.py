"""Check a `regretlab` command line before Hydra runs it: one line per mistake, exit 2.

Hydra reports its own errors (a value of the wrong type, a misspelt key, an unknown config) in
several lines with exit status 1, and a multirun meets a bad job only when that job starts. The
`regretlab` console script (`cli`) therefore composes the configuration first, with Hydra's
compose API, and:

* rewrites an exact integer in scientific notation for an integer field (``horizon=1e15``,
  ``env.K=1e2``: the top-level integer fields, and the env's and agents' parameters annotated
  as integers by their ``_target_``) to its integer digits, which Hydra's int fields would
  refuse (and an untyped field would take as a float);
* turns Hydra's errors into one line naming the field (``horizon: must be an integer (got
  '2.5')``, ``horizn: not a field of the config (did you mean horizon?)``, ``agents: no config
  'nope' (one of: ...)``);
* refuses what Hydra would accept silently: a number for a boolean field (``progress=2``), a key
  added with ``+`` that is no field of the config (``+horizn=5``), a multirun sweep of no value
  (``env.K=range(1,1)``, a ``glob`` that matches nothing);
* refuses a run directory that is empty or cannot be written, and a multirun into a sweep
  directory holding the jobs of another sweep (`experiments.results.reuse_conflicts`);
* keeps what a single run's directory held of Hydra's files (``.hydra/``, the log) before Hydra
  overwrites them (`protect_run_dir`), so that a command refused after Hydra started
  (`experiments.run.main`) puts them back (`restore_run_dir`) instead of leaving a finished
  run with the refused command's config;
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
BOOL_FIELDS = ("x64", "progress", "plot")  # bool-typed fields: true or false, not a number
_INFO_FLAGS = (
    "-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "-sc", "--shell-completion",
    "--version", "-p", "--package", "-cp", "--config-path", "-cn", "--config-name",
    "-cd", "--config-dir", "--experimental-rerun", "-r", "--resolve",
)  # fmt: skip
_LAUNCHER_EXTRAS = {  # Hydra launcher plugins and the pyproject extra that installs each
    "joblib": "joblib", "submitit_local": "slurm", "submitit_slurm": "slurm", "ray": "ray",
}  # fmt: skip
_SCIENTIFIC = re.compile(r"^[+-]?\d+(\.\d*)?[eE][+-]?\d+$")


def integer_literals(args: list[str], is_int: Callable[[str], bool] | None = None) -> list[str]:
    """`args` with ``FIELD=1e15`` (FIELD an integer field: `INT_FIELDS`, or where `is_int` says
    so; the value an exact integer) written as ``FIELD=1000000000000000``; comma-separated sweep
    values likewise."""
    out = []
    for arg in args:
        key, eq, value = arg.partition("=")
        field = key.lstrip("+~")
        wanted = is_int is not None and _scientific(value) and is_int(field)
        if eq and (field in INT_FIELDS or wanted):
            value = ",".join(_as_integer(v) for v in value.split(","))
        out.append(f"{key}{eq}{value}")
    return out


def _scientific(value: str) -> bool:
    return any(_SCIENTIFIC.match(v.strip()) for v in value.split(","))


def int_fields(args: list[str], conf_dir: str) -> Callable[[str], bool]:
    """Which dotted fields of the config `args` compose are integers: a parameter of the env or
    of an agent whose ``_target_`` annotates it as ``int`` (``env.K``), or, where it has no
    annotation, whose default is an integer. The config is composed without the overrides in
    scientific notation and without sweeps (a failure: no field is)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    plain = [
        a
        for a in args
        if not a.startswith("-")
        and not _scientific(a.partition("=")[2])
        and "," not in a
        and "(" not in a.partition("=")[2]
    ]
    try:
        with initialize_config_dir(config_dir=conf_dir, version_base="1.3", job_name="regretlab"):
            cfg = compose("config", overrides=plain)
    except Exception:
        return lambda field: False

    def is_int(field: str) -> bool:
        parent, _, name = field.rpartition(".")
        if not parent or parent.split(".")[0] not in ("env", "agents"):
            return False
        node = OmegaConf.select(cfg, parent, default=None, throw_on_missing=False)
        if node is None or not OmegaConf.is_dict(node):
            return False
        annotation = _annotation(node.get("_target_"), name)
        if annotation is not None:
            return _is_int_type(annotation)
        default = node.get(name)
        return isinstance(default, int) and not isinstance(default, bool)

    return is_int


def _annotation(target, name: str):
    """The type annotation of parameter `name` of the callable `target` names, or None."""
    import inspect
    import typing

    if not isinstance(target, str):
        return None
    try:
        from hydra._internal.utils import _locate

        obj = _locate(target)
        hints = typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj)
        if inspect.isclass(obj) and name not in hints:
            hints = typing.get_type_hints(obj)
    except Exception:
        return None
    return hints.get(name)


def _is_int_type(annotation) -> bool:
    import types
    import typing

    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    options = typing.get_args(annotation) if union else (annotation,)
    return int in options and float not in options


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


def jobs_of(overrides: list[str], multirun: bool, config_loader=None) -> list[list[str]] | None:
    """The override lists of the jobs a command runs (Hydra's basic sweeper: the product of the
    comma-list, range and glob sweeps, the first varying slowest; a glob over a config group's
    options needs Hydra's `config_loader`), or None when the sweep syntax is beyond this check.
    A sweep of no value (``range(1,1)``, a glob matching nothing) is a ConfigError: the multirun
    would run no job."""
    if not multirun:
        return [overrides]
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create(config_loader=config_loader).parse_overrides(overrides)
    choices = []
    for text, o in zip(overrides, parsed, strict=True):
        key = o.get_key_element()
        if not o.is_sweep_override():
            choices.append([f"{key}={o.get_value_element_as_str()}"])
            continue
        try:
            values = [f"{key}={v}" for v in o.sweep_string_iterator()]
        except Exception:  # interval sweeps (optimiser plugins): leave them to Hydra
            return None
        if not values:
            raise ConfigError(
                f"{key}: {text.partition('=')[2]} is a sweep of no value: the multirun would run"
                " no job"
            )
        choices.append(values)
    return [list(job) for job in itertools.product(*choices)]


def override_errors(
    overrides: list[str], config_loader=None, fields: list[str] | tuple[str, ...] = ()
) -> list[str]:
    """Mistakes in `overrides` that Hydra accepts silently: a number for a boolean field
    (``progress=2``: OmegaConf takes any integer as a bool), a key added with ``+`` that is no
    field of the config (``+horizn=5``; ``+agents.NAME...`` and ``hydra.`` keys are fine).
    `fields`: the top-level fields of the primary config (`preflight` composes it)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create(config_loader=config_loader).parse_overrides(overrides)
    except Exception:
        return []  # reported by the parse of `jobs_of` or by Hydra
    known = [*fields, *(f for f in ("hydra", "experiment") if f not in fields)]
    with contextlib.suppress(Exception):  # config groups of the search path (an own agent's)
        known += [g for g in config_loader.list_groups("") if g not in known]
    errors = []
    for o in parsed:
        key = o.key_or_group
        if o.is_add() or o.is_force_add():
            top = key.split(".")[0].split("@")[0]
            if top not in known:
                close = difflib.get_close_matches(top, known, n=1)
                hint = f" (did you mean {close[0]}?)" if close else f" (has: {', '.join(known)})"
                errors.append(f"{top}: not a field of the config{hint}")
                continue
        if key in BOOL_FIELDS and not o.is_delete():
            values = (
                list(o.sweep_iterator()) if o.is_sweep_override() and o.is_discrete_sweep()
                else [] if o.is_sweep_override() else [o.value()]
            )  # fmt: skip
            bad = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
            if bad:
                errors.append(f"{key}: must be true or false (got {bad[0]})")
    return errors


def preflight(args: list[str], conf_dir: str, prepare: Callable) -> list[str]:
    """The one-line errors of the command line `args` ([] when it may run); `prepare(cfg,
    overrides)` validates one job's composed config (`experiments.run.prepare`)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from experiments.results import reuse_conflicts
    from experiments.sweep import expand as expand_sweep

    multirun = any(a in ("-m", "--multirun") for a in args)
    overrides = [a for a in args if not a.startswith("-")]
    errors = []
    with initialize_config_dir(config_dir=conf_dir, version_base="1.3", job_name="regretlab"):
        loader = GlobalHydra.instance().config_loader()
        try:
            jobs = jobs_of(overrides, multirun, loader)
        except ConfigError as e:
            return [str(e)]
        except Exception as e:
            return [hydra_error_line(e)]
        fields: list[str] = []
        with contextlib.suppress(Exception):  # a config that does not compose: reported below
            fields = [str(k) for k in compose("config")]
        errors = override_errors(overrides, loader, fields)
        if errors or jobs is None:
            return errors
        varying = [i for i in range(len(jobs[0])) if len({job[i] for job in jobs}) > 1]
        sweep_dir, configs = None, []
        for number, job in enumerate(jobs):
            label = " ".join(job[i] for i in varying)
            where = f"job {number} ({label}): " if multirun and len(jobs) > 1 else ""
            configs.append(None)
            try:
                cfg = compose("config", overrides=job, return_hydra_config=True)
                field = "hydra.sweep.dir" if multirun else "hydra.run.dir"
                check_run_dir(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir, field)
                if multirun:  # a single run is validated by `main` itself, before compiling
                    from omegaconf import OmegaConf, open_dict

                    sweep_dir = sweep_dir or (cfg.hydra.sweep.dir, _job_subdirs(cfg))
                    with open_dict(cfg):
                        del cfg["hydra"]
                    OmegaConf.set_struct(cfg, True)
                    sweep_jobs = expand_sweep(cfg, job, Path("."))
                    for sweep_job in sweep_jobs or [None]:
                        exp = prepare(sweep_job.config if sweep_job else cfg, job)
                    configs[-1] = None if sweep_jobs else exp.config
                else:
                    protect_run_dir(cfg.hydra.run.dir, cfg.hydra.output_subdir, cfg.hydra.job.name)
            except ConfigError as e:
                errors.append(f"{where}{e}")
            except Exception as e:
                errors.append(f"{where}{hydra_error_line(e)}")
    if multirun and not errors and sweep_dir is not None and sweep_dir[1]:
        conflicts = reuse_conflicts(Path(sweep_dir[0]), configs)
        if conflicts:
            errors.append(reuse_error("hydra.sweep.dir", sweep_dir[0], conflicts))
    return errors


def reuse_error(field: str, directory: str | Path, conflicts: list[str]) -> str:
    """The one line refusing to run into `directory` holding what `conflicts` lists."""
    return (
        f"{field}: {directory} holds another command's results ({'; '.join(conflicts)}):"
        " nothing was run or changed; use a new directory, or delete those first"
    )


def _job_subdirs(cfg) -> bool:
    """Whether a multirun's jobs go to ``<sweep dir>/<job number>`` (Hydra's default
    ``hydra.sweep.subdir``), where `preflight` can tell which job each directory belongs to."""
    from omegaconf import OmegaConf

    subdir = OmegaConf.to_container(cfg.hydra.sweep, resolve=False).get("subdir")
    return subdir == "${hydra.job.num}"


# --------------------------------------------------------------------------- Hydra's files kept
_SNAPSHOTS: dict[str, dict] = {}  # run directory (absolute, as Hydra names it) -> what it held


def protect_run_dir(run_dir: str, output_subdir: str | None, job_name: str) -> None:
    """Keep in memory what `run_dir` holds of the files Hydra is about to write there (its
    ``output_subdir``, ``.hydra/``: config.yaml, hydra.yaml, overrides.yaml; the job's log,
    ``<job name>.log``), so that `restore_run_dir` can put them back."""
    d = Path(os.path.abspath(str(run_dir)))  # as Hydra's run_job makes it absolute
    sub = d / output_subdir if output_subdir else None
    try:
        held = [p for p in sub.iterdir() if p.is_file()] if sub and sub.is_dir() else []
        _SNAPSHOTS[str(d)] = {
            "existed": d.is_dir(),
            "subdir": sub,
            "subdir_existed": bool(sub and sub.is_dir()),
            "files": {p: p.read_bytes() for p in held},
            "logs": {p: p.read_bytes() for p in d.glob("*.log") if p.is_file()}
            if d.is_dir()
            else {},
            "log": d / f"{job_name}.log",
        }
    except OSError:  # unreadable: nothing kept, so `restore_run_dir` changes nothing there
        _SNAPSHOTS.pop(str(d), None)


def restore_run_dir(run_dir: str | Path) -> bool:
    """Put back what `protect_run_dir` kept of `run_dir` (Hydra's files written since: removed,
    or rewritten with their earlier contents; a directory that did not exist: removed, with the
    empty parents Hydra made inside the working directory). False when nothing was kept for it
    (then nothing is changed)."""
    from experiments.results import atomic_write

    d = Path(os.path.abspath(str(run_dir)))
    kept = _SNAPSHOTS.pop(str(d), None)
    if kept is None:
        return False
    sub = kept["subdir"]
    if sub is not None and sub.is_dir():
        for p in sub.iterdir():
            if p.is_file() and p not in kept["files"]:
                p.unlink(missing_ok=True)
    for p, data in kept["files"].items():
        if not p.is_file() or p.read_bytes() != data:
            atomic_write(p, lambda tmp, data=data: tmp.write_bytes(data))
    if sub is not None and not kept["subdir_existed"] and sub.is_dir() and not any(sub.iterdir()):
        sub.rmdir()
    for p in [*d.glob("*.log"), kept["log"]] if d.is_dir() else []:
        if p.is_file() and p not in kept["logs"]:
            p.unlink(missing_ok=True)
    for p, data in kept["logs"].items():
        if not p.is_file() or p.read_bytes() != data:
            p.write_bytes(data)  # a log only grows: its earlier contents, in place
    if not kept["existed"]:
        remove_empty_dirs(d)
    return True


def remove_empty_dirs(d: Path) -> None:
    """Remove `d` if empty, then its empty parents inside the working directory."""
    cwd = Path.cwd().resolve()
    d = d.resolve()
    if d != cwd and d.is_dir() and not any(d.iterdir()):  # the job's own directory, now empty
        d.rmdir()
        d = d.parent
    while d != cwd and d.is_dir() and not any(d.iterdir()) and cwd in d.parents:
        d.rmdir()  # empty parents Hydra made, inside the working directory only
        d = d.parent


def run_checked(
    main: Callable, conf_dir: str, prepare: Callable, argv: list[str] | None = None
) -> None:
    """Preflight the command line, then hand it to Hydra's `main` (exit 2 on mistakes)."""
    argv = list(sys.argv if argv is None else argv)
    args = argv[1:]
    _SNAPSHOTS.clear()
    informational = any(a.split("=", 1)[0] in _INFO_FLAGS for a in args)
    scientific = [a for a in args if "=" in a and _scientific(a.partition("=")[2])]
    args = integer_literals(args, int_fields(args, conf_dir) if scientific else None)
    sys.argv = [argv[0], *args]
    if not informational:
        errors = preflight(args, conf_dir, prepare)
        if errors:
            for line in errors:
                print(f"regretlab: error: {line}", file=sys.stderr)
            sys.exit(2)
    main()
