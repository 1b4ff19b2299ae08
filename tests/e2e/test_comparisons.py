"""Downtime where operators compare runs, through the real `rally` command (root).

The same sample task runs twice against one lab: healthy, then after the cloud was
"changed" (the lab's default fault profile now gives 10 s of HTTP 503 after every
switchover). `rally task trends` of both must show the metadata downtime of each
run, and the elastic exporter must carry it. A third task breaks only migrations
into one host: the host-pair table and the SLA must name that pair.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.e2e.browser import ReportBrowser, drawn
from tests.helpers import lab_workload, write_task
from tests.lab.demo import LAB_ARGS, SAMPLE_TASK, iteration_records, lab_with_rally
from tests.lab.harness import REPO_ROOT
from tests.lab.openstack.config import LabConfig

SHOTS_DIR = REPO_ROOT / "artifacts" / "trends"
HEALTHY_RUN = {"times": 2, "concurrency": 2}
BROKEN_PROFILE = {"lab_metadata_outage": "10", "lab_metadata_shape": "http_503"}
SOURCE, DESTINATION = LabConfig().hypervisors
PAIR_META = {"lab_boot_host": SOURCE, "lab_faults_into": DESTINATION,
             "lab_metadata_outage": "3", "lab_metadata_shape": "refused",
             "lab_network_blackout": "0.5", "lab_migration_duration": "0.5"}


def _workload(report: dict) -> dict:
    [task] = report["tasks"]
    [subtask] = task["subtasks"]
    [workload] = subtask["workloads"]
    return workload


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("comparisons")
    with lab_with_rally(root) as (lab, rally):
        before = rally.start_task(SAMPLE_TASK, "lab", args=HEALTHY_RUN, args_file=LAB_ARGS)
        lab.set_fault_profile(BROKEN_PROFILE)
        after = rally.start_task(SAMPLE_TASK, "lab", args=HEALTHY_RUN, args_file=LAB_ARGS)
        lab.set_fault_profile({})
        pairs_task = write_task(root / "pairs.json", "host pairs", {
            "into one broken host": lab_workload(
                {"settle": 1, "recovery_timeout": 20, "migrations": 2}, PAIR_META,
                times=2, concurrency=2,
                sla={"metadata_downtime": {"allowed_metadata_downtime": 6},
                     "max_avg_duration_per_atomic": {"metadata.downtime": 1}})})
        pairs = rally.start_task(pairs_task, "lab")
        trends = root / "trends.html"
        rally.run("task", "trends", "--html-static", "--out", str(trends),
                  before[1], after[1])
        export = root / "elastic.ndjson"
        rally.run("task", "export", after[1], "--type", "elastic", "--to", str(export))
        yield {"before": (before[0], rally.json_report(before[1])),
               "after": (after[0], rally.json_report(after[1])),
               "pairs": (pairs[0], rally.json_report(pairs[1])),
               "trends": trends, "export": export}


def _downtimes(report: dict) -> list[float]:
    return sorted(r.metadata.downtime for r in iteration_records(_workload(report)))


def _trends_data(html: Path) -> list[dict]:
    match = re.search(r"\$scope\.data = (\[.*?\]);\n", html.read_text(), re.DOTALL)
    assert match, "no trends data in the page"
    return json.loads(match.group(1))


def test_the_change_shows_in_the_verdicts(runs):
    assert runs["before"][0] == 0 and runs["after"][0] == 2
    assert max(_downtimes(runs["before"][1])) < 2
    assert min(_downtimes(runs["after"][1])) > 9


def test_trends_plot_metadata_downtime_of_both_runs(runs):
    [workload] = _trends_data(runs["trends"])
    assert workload["length"] == 2          # the same workload, two runs
    actions = {a["name"]: dict(a["durations"]) for a in workload["actions"]}
    maxima = [value for _, value in actions["metadata.downtime"]["max"]]
    assert len(maxima) == 2
    assert maxima[0] == pytest.approx(max(_downtimes(runs["before"][1])), abs=0.01)
    assert maxima[1] == pytest.approx(max(_downtimes(runs["after"][1])), abs=0.01)
    assert "network.downtime" in actions


def test_trends_page_draws_metadata_downtime_offline(runs):
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    with ReportBrowser() as browser:
        page = browser.context.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(exc.message))
        page.goto(Path(runs["trends"]).resolve().as_uri())
        page.locator("#content-main table tbody tr").first.click()
        page.locator("ul.tabs li", has_text="Atomic actions").click()
        title = page.locator(".chart-title", has_text="metadata.downtime").first
        title.wait_for()
        drawn(page)
        chart = title.locator("xpath=following-sibling::div[1]")
        chart.locator("path.nv-line").first.wait_for()
        assert chart.locator("g.nv-series").count() >= 6   # min ... avg, drawn
        title.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS_DIR / "trends-metadata-downtime.png"),
                        full_page=False)
        page.close()
        assert errors == [] and browser.blocked == []


def test_the_elastic_export_carries_the_downtime(runs):
    documents = [json.loads(line) for line in runs["export"].read_text().splitlines()
                 if line.strip()]
    downtimes = sorted(d["duration"] for d in documents
                       if d.get("action_name") == "metadata.downtime")
    assert downtimes == pytest.approx(_downtimes(runs["after"][1]), abs=0.01)
    outages = [d for d in documents if d.get("action_name") == "metadata.outage"]
    assert outages and all(d["parent"] for d in outages)


def test_the_broken_host_pair_is_named(runs):
    exit_code, report = runs["pairs"]
    workload = _workload(report)
    assert exit_code == 2
    records = iteration_records(workload)
    for record in records:
        by_pair = {m.host_pair: m for m in record.migrations}
        into_broken = by_pair[f"{SOURCE} -> {DESTINATION}"]
        back = by_pair[f"{DESTINATION} -> {SOURCE}"]
        assert into_broken.metadata_downtime > 2.5 and back.metadata_downtime < 1.0
        # Nova's own timeline: it was done well before metadata came back.
        assert [e.name for e in into_broken.nova_events] == [
            "conductor_live_migrate_instance", "compute_live_migration",
            "compute_post_live_migration_at_destination"]
        [outage] = [o for o in record.metadata.outages if o.duration > 2.5]
        nova_done = into_broken.nova_finished - record.clock_offset
        assert outage.end - nova_done > 2.0, (outage, nova_done)
    [sla] = [s for s in workload["sla_results"]["sla"]
             if s["criterion"] == "metadata_downtime"]
    assert f"worst host pair {SOURCE} -> {DESTINATION}" in sla["detail"]
    [per_atomic] = [s for s in workload["sla_results"]["sla"]
                    if s["criterion"] == "max_avg_duration_per_atomic"]
    assert per_atomic["success"] is False and "metadata.downtime" in per_atomic["detail"]
    [table] = [c for c in workload["data"][0]["output"]["additive"]
               if c["title"] == "Downtime by host pair"]
    assert {row[0] for row in table["data"]} == {
        f"{SOURCE} -> {DESTINATION}: metadata", f"{SOURCE} -> {DESTINATION}: network",
        f"{DESTINATION} -> {SOURCE}: metadata", f"{DESTINATION} -> {SOURCE}: network"}
