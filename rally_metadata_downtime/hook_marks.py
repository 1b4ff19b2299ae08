"""Marks of hook runs, from the marked_sys_call hook to the scenarios' timelines.

Rally runs a workload's hooks in its engine process and the iterations in runner
processes, and hands hook results to nobody before the workload ends, so the hook
writes each run's start and end here, on the Rally host's clock, and
MetadataDowntime.boot_and_watch reads the runs that overlapped its measurement.

One file per task, JSON lines, in a private directory beside Rally's own per-user
state (~/.rally/metadata-downtime-hooks, mode 0700, refused when it is a symlink or
someone else's; the hook and the runners share the engine's HOME); each run writes two
lines (start, finish), appended whole with O_APPEND so runs at once never mix.
The parsing is pure (parse_marks); only the four small functions at the end touch
files. Files older than MAX_AGE are removed when a hook writes.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from pathlib import Path

from rally_metadata_downtime.records import Disruption

DIRECTORY_NAME = "metadata-downtime-hooks"
MAX_AGE = 7 * 24 * 3600.0
MAX_NAME = 200
_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class MarksError(RuntimeError):
    """The marks directory is not safe to use, or a task id is not a file name."""


def parse_marks(text: str) -> list[Disruption]:
    """The hook runs in a marks file, in the order they started; lines that do not
    parse (a run cut by a crash mid-write) are skipped, an unfinished run has no
    finished_at."""
    started: dict[str, dict] = {}
    finished: dict[str, dict] = {}
    for line in text.splitlines():
        try:
            mark = json.loads(line)
            run = str(mark["run"])
            if "started_at" in mark:
                started[run] = {"name": str(mark["name"])[:MAX_NAME],
                                "triggered_by": str(mark["triggered_by"]),
                                "started_at": float(mark["started_at"])}
            else:
                finished[run] = {"finished_at": float(mark["finished_at"]),
                                 "status": str(mark["status"])}
        except (ValueError, KeyError, TypeError):
            continue
    runs = [Disruption(**start, **finished.get(run, {"finished_at": None}))
            for run, start in started.items()]
    return sorted(runs, key=lambda d: d.started_at)


def overlapping(runs: list[Disruption], start: float, end: float) -> list[Disruption]:
    """The runs that were going on at some time in [start, end] (host clock)."""
    return [d for d in runs if d.started_at <= end
            and (d.finished_at is None or d.finished_at >= start)]


def marks_directory(create: bool = False) -> Path:
    """This user's marks directory, checked to be a real directory only it can use."""
    path = Path.home() / ".rally" / DIRECTORY_NAME
    if create:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return path   # nothing marked yet: readers find no file
    if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid()
            or info.st_mode & 0o077):
        raise MarksError(f"{path} is not a private directory of this user: hook runs "
                         f"are not marked (remove it)")
    return path


def marks_file(task_id: str, create: bool = False) -> Path:
    if not _TASK_ID.match(task_id):
        raise MarksError(f"task id {task_id!r} is not a file name")
    return marks_directory(create) / f"{task_id}.jsonl"


def write_mark(task_id: str, mark: dict) -> None:
    """Append one mark (one line) to the task's file."""
    path = marks_file(task_id, create=True)
    line = (json.dumps(mark, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_marks(task_id: str) -> list[Disruption]:
    """The task's hook runs so far (none when no marked hook ran)."""
    try:
        return parse_marks(marks_file(task_id).read_text(errors="replace"))
    except FileNotFoundError:
        return []


def remove_old_marks(now: float | None = None) -> None:
    """Remove marks files of tasks older than MAX_AGE (bounded: one directory)."""
    now = time.time() if now is None else now
    for path in marks_directory().glob("*.jsonl"):
        try:
            if now - path.stat().st_mtime > MAX_AGE:
                path.unlink()
        except OSError:
            continue   # another hook removed it first
