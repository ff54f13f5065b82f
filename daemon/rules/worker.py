"""Rule files read in a child process: the daemon's event loop never waits for ruamel.

Reading a file near the size limit takes ruamel seconds of pure Python. In a thread of the daemon it
would share the GIL and the garbage collector with the event loop (each full collection of the
growing node graph pauses every thread, hundreds of milliseconds near the end); in a child process
it costs the daemon nothing, and a file that takes longer than ``parse_timeout_s`` is stopped by
ending the child. The child is forked from a forkserver that has imported the loading code once, so
a reload starts one in milliseconds. Call :func:`read_files` from a worker thread (it blocks).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from multiprocessing.pool import Pool
from pathlib import Path

from daemon.rules.load import ParsedFile, parse_rule_file
from daemon.yamlsource import ConfigError, ErrorItem, YamlLimits

__all__ = ["read_files"]

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["daemon.rules.load"])


def _parse(path: Path, limits: YamlLimits) -> ParsedFile | list[ErrorItem]:
    """In the child: a parsed file, or its errors (a list pickles where ConfigError would not)."""
    try:
        return parse_rule_file(path, limits)
    except ConfigError as exc:
        return exc.errors
    except (MemoryError, RecursionError) as exc:
        return [ErrorItem(str(path), 1, 1, f"the file cannot be read: {type(exc).__name__}")]


def _too_slow(path: Path, limits: YamlLimits) -> ConfigError:
    why = (
        f"reading the file took longer than {limits.parse_timeout_s:g} s (rule_files.parse_timeout_s in the daemon "
        "config): it is too large or too complex; split it"
    )
    return ConfigError([ErrorItem(str(path), 1, 1, why)])


#: How long a child may take to start (a fork of the forkserver: milliseconds, unless the host is swamped).
START_TIMEOUT_S = 30.0


def _start() -> Pool:
    """A pool of one child, started: the time limit of each file counts from a running child."""
    pool = _CONTEXT.Pool(1)
    try:
        pool.apply_async(int).get(START_TIMEOUT_S)
    except multiprocessing.TimeoutError:
        pool.terminate()
        raise multiprocessing.ProcessError(f"no child process started within {START_TIMEOUT_S:g} s") from None
    return pool


def read_files(paths: Sequence[Path], limits: YamlLimits) -> dict[str, ParsedFile | ConfigError]:
    """Parse each file in a child process within ``limits.parse_timeout_s``; by name, the file or its errors.

    Raises ``OSError`` or :class:`multiprocessing.ProcessError` when no child can be started.
    """
    out: dict[str, ParsedFile | ConfigError] = {}
    pool: Pool | None = None
    try:
        for path in paths:
            if pool is None:
                pool = _start()
            job = pool.apply_async(_parse, (path, limits))
            try:
                got = job.get(limits.parse_timeout_s)
            except multiprocessing.TimeoutError:
                pool.terminate()  # stops the child in the middle of the file
                pool = None
                out[str(path)] = _too_slow(path, limits)
                continue
            except Exception as exc:  # the child failed in a way _parse could not report
                out[str(path)] = ConfigError([ErrorItem(str(path), 1, 1, f"the file cannot be read ({exc!r})")])
                continue
            out[str(path)] = got if isinstance(got, ParsedFile) else ConfigError(got)
    finally:
        if pool is not None:
            pool.terminate()
    return out
