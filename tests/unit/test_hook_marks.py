"""Marks of hook runs: the pure parsing, the private directory, and the
marked_sys_call hook that writes them."""

import json
import os

import pytest

from rally_metadata_downtime import hook_marks
from rally_metadata_downtime.plugins.hooks import MarkedSysCall
from rally_metadata_downtime.records import Disruption


@pytest.fixture(autouse=True)
def private_tmp(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def lines(*marks):
    return "".join(json.dumps(m) + "\n" for m in marks)


def test_runs_pair_start_and_finish_in_start_order_and_skip_broken_lines():
    text = lines({"run": "b", "name": "cmd b", "triggered_by": "time: 20",
                  "started_at": 20.0},
                 {"run": "a", "name": "cmd a", "triggered_by": "iteration: 1",
                  "started_at": 10.0},
                 {"run": "a", "finished_at": 13.0, "status": "failed"}) + '{"run": "c", "na'
    assert hook_marks.parse_marks(text) == [
        Disruption("cmd a", "iteration: 1", 10.0, 13.0, "failed"),
        Disruption("cmd b", "time: 20", 20.0, None, None)]


def test_overlapping_keeps_runs_going_on_in_the_window():
    runs = [Disruption("before", "t", 1.0, 2.0), Disruption("across", "t", 4.0, 6.0),
            Disruption("running", "t", 9.0, None), Disruption("after", "t", 11.0, 12.0)]
    assert [r.name for r in hook_marks.overlapping(runs, 5.0, 10.0)] == ["across",
                                                                         "running"]


def test_write_then_read_in_a_private_directory():
    hook_marks.write_mark("task-1", {"run": "r", "name": "n", "triggered_by": "time: 1",
                                     "started_at": 1.0})
    directory = hook_marks.marks_directory()
    assert directory.stat().st_mode & 0o777 == 0o700
    assert hook_marks.read_marks("task-1") == [Disruption("n", "time: 1", 1.0, None)]
    assert hook_marks.read_marks("task-2") == []


def test_a_directory_others_can_write_or_a_symlink_is_refused(private_tmp):
    directory = hook_marks.marks_directory(create=True)
    directory.chmod(0o777)
    with pytest.raises(hook_marks.MarksError, match="not a private directory"):
        hook_marks.read_marks("task-1")
    directory.rmdir()
    (private_tmp / "elsewhere").mkdir(mode=0o700)
    directory.symlink_to(private_tmp / "elsewhere")
    with pytest.raises(hook_marks.MarksError):
        hook_marks.write_mark("task-1", {"run": "r"})


def test_a_task_id_must_be_a_file_name():
    with pytest.raises(hook_marks.MarksError, match="not a file name"):
        hook_marks.marks_file("../etc/passwd")


def test_old_marks_files_are_removed():
    hook_marks.write_mark("old", {"run": "r"})
    hook_marks.write_mark("new", {"run": "r"})
    old = hook_marks.marks_file("old")
    os.utime(old, (0, 0))
    hook_marks.remove_old_marks()
    assert not old.exists() and hook_marks.marks_file("new").exists()


def hook(command):
    return MarkedSysCall({"uuid": "task-1"}, command,
                         {"event_type": "time", "value": 10})


@pytest.mark.parametrize("command, status", [("true", "success"), ("false", "failed")])
def test_marked_sys_call_marks_its_run_and_keeps_sys_calls_result(command, status):
    action = hook(command)
    action.run_sync()
    result = action.result()
    assert result["status"] == status
    [run] = hook_marks.read_marks("task-1")
    assert (run.name, run.triggered_by, run.status) == (command, "time: 10", status)
    assert result["started_at"] <= run.started_at <= run.finished_at <= result[
        "finished_at"]


def test_a_mark_that_cannot_be_written_does_not_fail_the_hook():
    hook_marks.marks_directory(create=True).chmod(0o777)
    action = hook("true")
    action.run_sync()
    assert action.result()["status"] == "success"
