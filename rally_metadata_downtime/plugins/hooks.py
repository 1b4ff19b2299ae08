"""Hook marked_sys_call: Rally's sys_call, with each run marked on the timelines."""

from __future__ import annotations

import time
import uuid

from rally.common import logging
from rally.plugins.task.hooks.sys_call import SysCallHook
from rally.task import hook

from rally_metadata_downtime import hook_marks

LOG = logging.getLogger(__name__)


@hook.configure(name="marked_sys_call")
class MarkedSysCall(SysCallHook):
    """Runs a command, as sys_call does, and marks when it ran.

    The same configuration (the command line) and the same results as Rally's
    sys_call; in addition each run's start and end, on the Rally host's clock,
    are written where MetadataDowntime.boot_and_watch reads them, so every
    iteration that was measuring meanwhile marks the run on its probe timeline
    and keeps it in its record. Use it for the disruption a watch should see
    (restart a metadata agent, fail over a chassis); Rally's own hook results
    (the report's Hooks tab) are unchanged.
    """

    def __init__(self, task, config, triggered_by):
        super().__init__(task, config, triggered_by)
        self.triggered_by = triggered_by
        self._marked_status = "success"

    def set_error(self, exception_name, description, details):
        self._marked_status = "failed"
        super().set_error(exception_name, description, details)

    def run(self) -> None:
        task_id, run = self.task["uuid"], str(uuid.uuid4())
        marked = self._mark(task_id, {
            "run": run, "name": self.config, "started_at": time.time(),
            "triggered_by": "{event_type}: {value}".format(**self.triggered_by)})
        try:
            super().run()
        except Exception:
            self._marked_status = "failed"
            raise
        finally:
            if marked:
                self._mark(task_id, {"run": run, "finished_at": time.time(),
                                     "status": self._marked_status})

    @staticmethod
    def _mark(task_id: str, mark: dict) -> bool:
        """Write a mark; a mark that cannot be written never fails the hook."""
        try:
            hook_marks.write_mark(task_id, mark)
            if "started_at" in mark:
                hook_marks.remove_old_marks()
            return True
        except (OSError, hook_marks.MarksError) as e:
            LOG.warning(f"marked_sys_call: this run is not marked on the timelines: {e}")
            return False
