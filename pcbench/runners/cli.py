"""The command line around Hydra: Hydra parses and composes, this turns its failures into one line.

Hydra's own reporting (`run_and_report`) prints a pruned traceback and a hint about
HYDRA_FULL_ERROR. `cli` sets that variable for the duration of the call, which makes Hydra re-raise
instead (its documented switch), and then reports bad input as exactly one stderr line
`error: ...` with exit code 2:

- PcbenchError from anywhere (knob checks, data files, models);
- Hydra/OmegaConf composition errors: an unknown group option lists the group's options, an
  unknown key lists the keys of its node, a parse error shows the offending input;
- plain ValueError/TypeError that Hydra raises while parsing overrides (`task=3`);
- OSError with a file name (read-only output folder, cache path that is a file).

A ValueError or TypeError raised inside the task function is a bug, not bad input: it keeps its
full traceback in a single run. A cell of a sweep never raises: run.py writes its error.txt and
records it with `failed`, the sweeper adds its summary line, and `cli` prints both at the end.

Every Hydra flag (--cfg, -p, -cn, -cd, --info, --help, -m) passes through
untouched because nothing here looks at the arguments.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from pcbench.core.errors import PcbenchError, closest
from pcbench.core.files import write_atomically
from pcbench.core.redact import redact
from pcbench.runners.build import PLAIN_NAME
from pcbench.runners.catalog import options as group_options

# Cells of this process's run or sweep that failed, as (one-line message, is it a bug). A cell
# records its failure and returns instead of raising: Hydra would otherwise add its own "Error
# executing job" line and, in a sweep, stop at the first failed cell.
FAILED: list[tuple[str, bool]] = []
# The sweep's closing line (`sweep: N done, ...`), set by the sweeper; printed last by `cli`.
SUMMARY: list[str] = []
# A local sweep's size and start (set by the sweeper), for each cell's "k/N, ETA" line.
PROGRESS: dict[str, float] = {}


def progress() -> str:
    """`3/10, ETA 2 min` after a cell of a local sweep ends ("" where cells run elsewhere)."""
    if not PROGRESS.get("total"):
        return ""
    PROGRESS["finished"] = PROGRESS.get("finished", 0) + 1
    done, total = int(PROGRESS["finished"]), int(PROGRESS["total"])
    left = (time.monotonic() - PROGRESS["started"]) / done * (total - done)
    return f"{done}/{total}" + (f", ETA {duration(left)}" if done < total else "")


def duration(seconds: float) -> str:
    """`40 s`, `12 min`, `2.5 h`: an ETA as a person reads it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def failed(message: str, folder: Path | None = None, bug: bool = False) -> dict[str, Any]:
    """Record a cell's failure; the task function returns this as its result.

    A sweep launched elsewhere (submitit) gets it back as the job's return value, so the folder and
    the kind of failure travel with the message.
    """
    FAILED.append((message, bug))
    return {"error": message, "bug": bug, "folder": str(folder) if folder is not None else None}


def write_error(folder: Path, message: str, details: str | None = None) -> None:
    """Mark a cell folder failed: error.txt holds the one-line message (and a traceback for a bug).

    Any metrics.json goes, so the folder never reads as finished beside an error; a rerun that
    finishes removes error.txt again (runners/record.py's Recorder).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").unlink(missing_ok=True)
        text = redact(message.rstrip("\n") + "\n" + (f"\n{details.rstrip()}\n" if details else ""))
        write_atomically(folder / "error.txt", text)  # whole or absent: a full disk leaves no empty one
    except OSError:
        pass  # the folder itself is the problem (read-only, gone): the message still reaches the terminal


def cli(main: Callable[[], object]) -> int:
    """Run a @hydra.main function; return the exit code.

    0 when everything ran; 2 after `error:` lines for bad input; 1 when a cell of a sweep hit a
    bug (its traceback is in its folder's error.txt and run.log, not on the terminal).
    """
    previous = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing its own report
    FAILED.clear()
    SUMMARY.clear()
    PROGRESS.clear()
    try:
        repeated = repeated_override(sys.argv[1:])
        if repeated:
            raise PcbenchError(repeated)
        check_study(sys.argv[1:])
        main()
    except KeyboardInterrupt:
        print(interrupted_line(), file=sys.stderr, flush=True)
        return 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
    except Exception as exc:
        message = one_line(exc, _task_code(main))
        if message is None:
            raise
        print(f"error: {redact(message)}", file=sys.stderr)
        return 2
    finally:
        if previous is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous
    for message, _ in FAILED:  # one line per failed cell (one in a single run)
        print(f"error: {redact(message)}", file=sys.stderr)
    for line in SUMMARY:  # last: what a user scrolling a long sweep's output reads first
        print(redact(line), file=sys.stderr if FAILED else sys.stdout, flush=True)
    if not FAILED:
        return 0
    return 1 if any(bug for _, bug in FAILED) else 2


def interrupted_line() -> str:
    """What Ctrl-C leaves: how far a sweep got, and that nothing finished is lost."""
    finished = int(PROGRESS.get("finished", 0))
    total = int(PROGRESS.get("total", 0))
    failed = len(FAILED)
    so_far = f"sweep: {finished} of {total} cells ended ({failed} failed) before the interrupt; " if total else ""
    return (f"interrupted: {so_far}finished cells are kept and the cache holds the rest of the work; "
            "the same command again goes on from there")


def check_study(arguments: list[str]) -> None:
    """`study=../../x` refused before Hydra makes the run folder (it writes .hydra/ and run.log there
    before any config check runs); each value of a swept `study=a,b` too."""
    for argument in arguments:
        key, sep, value = argument.partition("=")
        if sep and key.lstrip("+~") == "study":
            for name in value.split(","):
                if not PLAIN_NAME.allows(name):
                    raise PcbenchError(f"study={name!r} is not allowed; allowed: {PLAIN_NAME.meaning}")


def repeated_override(arguments: list[str]) -> str | None:
    """A key set more than once on one command line (Hydra keeps the last value silently, while the
    cell's folder is named after both), said as one line; None when every key is set once."""
    seen: dict[str, str] = {}
    for argument in arguments:
        if argument.startswith("-") or "=" not in argument:
            continue  # a flag or a flag's value (-cn config)
        key = argument.split("=", 1)[0].lstrip("+~")
        if key in seen:
            return f"{key} is set more than once ({seen[key]}, {argument}); give each key once"
        seen[key] = argument
    return None


def _task_code(main: Callable[[], object]) -> object | None:
    wrapped = getattr(main, "__wrapped__", None)  # hydra.main uses functools.wraps
    return getattr(wrapped, "__code__", None)


def one_line(exc: BaseException, task_code: object | None = None) -> str | None:
    """The one-line message for bad input, or None for an exception that is a bug."""
    if isinstance(exc, PcbenchError):
        return _flat(str(exc))
    if isinstance(exc, MissingConfigException):
        return _unknown_option(exc)
    if isinstance(exc, OverrideParseException):
        return f"cannot parse {exc.override!r}: {_first_line(str(exc))}"
    if isinstance(exc, HydraException | OmegaConfBaseException):
        return _composition(exc)
    full = disk_full(exc)
    if full is not None:
        return full
    if isinstance(exc, OSError) and exc.filename:
        return _os_error(exc)
    if isinstance(exc, ValueError | TypeError) and not _raised_in(exc, task_code):
        return _flat(str(exc)) or type(exc).__name__  # Hydra's own parsing, e.g. `task=3`
    return None


def _flat(text: str) -> str:
    return " ".join(text.split())


def _unknown_option(exc: MissingConfigException) -> str:
    missing = exc.missing_cfg_file or ""
    group, _, option = missing.partition("/")
    if not option:  # the primary config itself (-cn nope): Hydra's first line says which
        return _first_line(str(exc))
    allowed = sorted(set(exc.options or []) | set(group_options(group)))
    guess = closest(option, allowed)
    if guess is None:
        return f"unknown {group} {option!r}; allowed: {', '.join(allowed) or '(none)'}"
    # With a likely meaning, a long list only hides it: `pcbench list` describes every option.
    listed = f"allowed: {', '.join(allowed)}" if len(allowed) <= 25 else f"`pcbench list` shows all {len(allowed)}"
    return f"unknown {group} {option!r}; did you mean {guess!r}? {listed}"


def _composition(exc: BaseException) -> str:
    cause = exc if isinstance(exc, OmegaConfBaseException) else exc.__cause__
    if isinstance(cause, ConfigKeyError | MissingMandatoryValue) or (
        isinstance(cause, OmegaConfBaseException) and "not in struct" in str(cause)
    ):
        return _unknown_key(exc, cause)
    return _with_cause(exc)


def _with_cause(exc: BaseException) -> str:
    """The exception's first line, followed by its causes' where it ends in a colon (Hydra's
    `Error in call to target 'X':` puts the reason on a later line or in the chained exception)."""
    line = _first_line(str(exc))
    seen = {id(exc)}
    cause = exc.__cause__ or exc.__context__
    while line.endswith(":") and cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        line = f"{line} {type(cause).__name__}: {_first_line(str(cause))}"
        cause = cause.__cause__ or cause.__context__
    if line.endswith(":"):  # no chained cause: the reason is on the message's later lines
        rest = [part.strip() for part in str(exc).strip().splitlines()[1:] if part.strip()]
        line = " ".join([line, *rest[:1]]) if rest else line
    return line


def _unknown_key(exc: BaseException, cause: OmegaConfBaseException) -> str:
    full_key = str(getattr(cause, "full_key", "") or getattr(cause, "key", ""))
    if isinstance(cause, MissingMandatoryValue):
        return f"{full_key} has no value (??? in its YAML); set it: {full_key}=..."
    parent = getattr(cause, "parent_node", None)
    head, _, key = full_key.rpartition(".")
    keys = [str(k) for k in parent.keys()] if parent is not None else []
    keys = [k for k in keys if k not in ("hydra", "defaults") and not k.startswith("_")]
    where = head or "the config"
    guess = closest(key, keys)
    if guess is not None:  # a likely typo: no hint to add it as a new key
        return f"{where} has no key {key!r}; did you mean {guess!r}? allowed: {', '.join(keys)}"
    return (f"{where} has no key {key!r}; allowed: {', '.join(keys) or '(none)'} "
            f"(or +{full_key}=... to add a new key)")


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "invalid configuration"


FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


def disk_full(exc: BaseException) -> str | None:
    """One line for a write that met a full disk or quota (Hydra's config copies, run.log, records,
    metrics: none of them names the file), else None."""
    if not isinstance(exc, OSError) or exc.errno not in FULL_DISK:
        return None
    where = f" writing {exc.filename}" if exc.filename else ""
    return (f"{exc.strerror or 'No space left on device'}{where}: free space where the results go, or move them "
            "(hydra.run.dir=..., hydra.sweep.dir=... with -m); finished cells and cache entries are kept")


def _os_error(exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    message = f"cannot use {exc.filename}: {reason}"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        # Where the harness writes: the run folder and the cache. Name the knobs that move them.
        message += "; pick a writable folder (hydra.run.dir=..., hydra.sweep.dir=... with -m, cache_dir=...)"
    return message


def _raised_in(exc: BaseException, code: object | None) -> bool:
    """Did the exception pass through the task function (so it is the job's own, not Hydra's)?"""
    if code is None:
        return True  # unknown: treat as a job error and keep the traceback
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return True
        tb = tb.tb_next
    return False
