"""The HTML report as operators read it, checked in a real browser.

Each check opens a report Rally wrote for a finished run (`rally task report`,
both `--out` HTML and `--html-static`) in Debian's chromium, driven by Playwright
(never a downloaded browser), headless, with a fresh profile and no network: every
request that is not a file:// URL is blocked, except the report's CDN links (see
tests/e2e/browser.py CDN_COPIES). It clicks through the report as an operator does
and compares what the browser renders with `rally task report --json` and `rally
task sla-check`. The checks are functions of the run's result dict (as
tests.lab.cloud.rally_task.run_sample returns it, plus add_report_files);
tests/lab/cloud/test_cloud.py runs them on the cloud lab's sample run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from rally_metadata_downtime.plugins import charts
from tests.e2e.browser import CDN_COPIES, ReportBrowser, choose_iteration, click, drawn
from tests.lab.harness import REPO_ROOT
from tests.lab.rally_report import report_workloads

SHOTS_DIR = REPO_ROOT / "artifacts" / "report"
TRENDS_SHOTS_DIR = REPO_ROOT / "artifacts" / "trends"
DOCS_SHOT = "report-scenario-data.png"   # the framing of docs/report-scenario-data.png

VARIANTS = ("html", "html-static")


def add_report_files(result: dict) -> dict:
    """The run's result plus the static HTML report and `rally task sla-check`'s
    exit code and rows."""
    rally_home = result["rally_home"]
    static = Path(result["html"]).with_name("report-static.html")
    rally_home.run("task", "report", result["task_uuid"], "--html-static",
                   "--out", str(static))
    sla_check = rally_home.sla_check(result["task_uuid"])
    return dict(result, html_static=static, sla_check_exit_code=sla_check.returncode,
                sla_check_rows=json.loads(sla_check.stdout))


# --- the report's parts ------------------------------------------------------------

def workloads(result: dict) -> list[dict]:
    return [workload for _, workload in report_workloads(result["report"])]


def workload_titles(result: dict) -> list[str]:
    return [title for title, _ in report_workloads(result["report"])]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


def scenario_name(workload: dict) -> str:
    [name] = workload["scenario"]
    return name


def _occurrence(result: dict, index: int) -> int:
    """1 for the first workload of its scenario, 2 for the second, ..."""
    names = [scenario_name(w) for w in workloads(result)]
    return names[:index].count(names[index]) + 1


def nav_name(result: dict, index: int) -> str:
    """The workload's entry in the report's menu: Rally numbers repeated names."""
    n = _occurrence(result, index)
    method = scenario_name(workloads(result)[index]).split(".", 1)[1]
    return method + (f" [{n}]" if n > 1 else "")


def overview_ref(result: dict, index: int) -> str:
    """The workload's name in the Task overview table."""
    n = _occurrence(result, index)
    return scenario_name(workloads(result)[index]) + (f"-{n}" if n > 1 else "")


def open_workload(page: Page, result: dict, index: int, tab: str | None = None) -> None:
    name = nav_name(result, index)
    click(page, page.locator("#content-nav .navmet").filter(
        has_text=re.compile(rf"^\s*{re.escape(name)}\s*$")))
    page.locator("#content-main h1", has_text=name).wait_for()
    if tab:
        click(page, page.locator("#content-main ul.tabs li", has_text=tab))


def js_text(value) -> str:
    """How AngularJS prints a JSON value: 3.0 is "3", True is "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def table_rows(widget) -> list[list[str]]:
    return widget.evaluate(
        "el => Array.from(el.querySelectorAll('tbody tr'))"
        ".filter(tr => tr.querySelector('td'))"
        ".map(tr => Array.from(tr.querySelectorAll('td')).map(td => td.textContent.trim()))")


def shown_sla(page: Page) -> list[dict]:
    """The open workload's Service-level agreement table, row by row."""
    rows = page.locator(
        "#content-main h2:has-text('Service-level agreement') + table tr.rich")
    rows.first.wait_for()
    return [{"criterion": r.locator("td").nth(0).text_content().strip(),
             "detail": r.locator("td").nth(1).text_content().strip(),
             "success": r.locator("td").nth(2).text_content().strip(),
             "class": r.get_attribute("class")} for r in rows.all()]


def chart_widget(page: Page, chart: dict):
    widget = page.locator(f'#content-main div[widget][title="{chart["title"]}"]')
    widget.wait_for()
    return widget


# Everything the browser drew for one NVD3 chart: each series' data as D3 bound it,
# its path, and the screen position of each of its points. D3 binds the series
# ({key, values}) to an nv-area path itself, but to an nv-line path's parent group
# (the path gets the bare values).
_RENDERED = """el => {
  const isSeries = d => d && !Array.isArray(d) && 'key' in d;
  const series = p => [p.__data__, p.parentNode.__data__].find(isSeries) || {};
  const drawn = sel => Array.from(el.querySelectorAll(sel)).map(p => ({
      key: series(p).key, values: series(p).values, d: p.getAttribute('d') || ''}));
  const centre = c => { const r = c.getBoundingClientRect();
                        return [r.left + r.width / 2, r.top + r.height / 2]; };
  const points = Array.from(el.querySelectorAll('g.nv-group'))
      .filter(g => g.querySelector('.nv-point'))
      .map(g => ({key: g.__data__.key,
                  xy: Array.from(g.querySelectorAll('.nv-point')).map(centre)}));
  const legend = Array.from(el.querySelectorAll('.nv-legendWrap .nv-series')).map(g => {
      const t = g.querySelector('text').getBoundingClientRect(),
            c = g.querySelector('circle').getBoundingClientRect();
      return {text: g.textContent, left: c.left, right: t.right, top: t.top}; });
  const ticks = Array.from(el.querySelectorAll('.nv-x .tick')).map(t => ({
      text: t.textContent, x: t.querySelector('line').getBoundingClientRect().left}));
  const text = sel => Array.from(el.querySelectorAll(sel)).map(n => n.textContent);
  return {lines: drawn('path.nv-line'), areas: drawn('path.nv-area'), points, legend,
          ticks, title: text(':scope > .h2'), description: text(':scope > .h3'),
          ylabel: text(':scope > .chart-label-y'),
          xlabel: text('.nv-x .nv-axislabel')};
}"""


def rendered(widget) -> dict:
    widget.locator("svg .nv-point").first.wait_for(state="attached")
    return widget.evaluate(_RENDERED)


def check_drawn_chart(drawn: dict, chart: dict, series: list[list], kind: str) -> None:
    """The chart's title, labels and legend, and every series drawn with its data."""
    assert drawn["title"] == [chart["title"]]
    assert drawn["description"] == [chart["description"]]
    assert drawn["ylabel"] == [chart["label"]]
    assert drawn["xlabel"] == [chart["axis_label"]]
    names = [name for name, _ in series]
    paths = drawn["lines"] if kind == "Lines" else drawn["areas"]
    assert [p["key"] for p in paths] == names
    for path, (name, values) in zip(paths, series):
        assert path["values"] == [pytest.approx(xy) for xy in values], name
        assert path["d"].startswith("M") and "NaN" not in path["d"], name
    assert [(p["key"], len(p["xy"])) for p in drawn["points"]] == [
        (name, len(values)) for name, values in series]
    # NVD3 1.1.15 sizes legend entries from an estimate of the text width: a long
    # name runs into the next entry.
    legend = drawn["legend"]
    assert [entry["text"] for entry in legend] == names
    for entry, following in zip(legend, legend[1:]):
        if abs(entry["top"] - following["top"]) < 1:
            assert entry["right"] <= following["left"], (entry, following)


# --- the checks --------------------------------------------------------------------

def check_loads_offline(result: dict, browser: ReportBrowser, variant: str) -> None:
    """The report opens with no request leaving the machine, and lists the workloads."""
    html = Path(result["html"] if variant == "html" else result["html_static"])
    external = set(re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="(https?://[^"]+)"',
                              html.read_text()))
    assert external == (set(CDN_COPIES) if variant == "html" else set())
    browser.served.clear()
    with browser.page(html) as page:
        refs = page.locator("#content-main table.linked tbody tr td:first-child")
        assert refs.count() == len(workloads(result))
        assert sorted(browser.served) == sorted(external)


def check_verdicts(result: dict, browser: ReportBrowser, variant: str,
                   shots: Path | None = None) -> list[bool]:
    """Each workload's SLA verdict and criteria as the HTML shows them, checked
    against `rally task report --json` and `rally task sla-check`; returns them."""
    html = Path(result["html"] if variant == "html" else result["html_static"])
    verdicts, failed_criteria = [], 0
    with browser.page(html) as page:
        for index, workload in enumerate(workloads(result)):
            click(page, page.locator("#content-nav .navcls", has_text="Task overview"))
            row = page.locator("#content-main table.linked tbody tr").filter(
                has=page.locator("td:first-child", has_text=re.compile(
                    rf"^\s*{re.escape(overview_ref(result, index))}\s*$")))
            passed = row.locator(".status-pass").is_visible()
            assert passed != row.locator(".status-fail").is_visible()

            open_workload(page, result, index, tab="Overview")
            shown = shown_sla(page)
            expected = workload["sla_results"]["sla"]
            assert [(s["criterion"], s["detail"], s["success"]) for s in shown] == [
                (s["criterion"], s["detail"], js_text(s["success"])) for s in expected]
            for s in shown:
                assert ("status-pass" if s["success"] == "true" else "status-fail") \
                    in s["class"].split()
            [downtime_row] = [s for s in shown if s["criterion"] == "metadata_downtime"]
            assert re.match(r"worst metadata downtime \d+\.\d\d s \(iteration \d+\), "
                            r"allowed [\d.]+ s(; worst host pair \S+ -> \S+ "
                            r"\(\d+\.\d\d s, \d+ migrations?\))? - (Passed|Failed)$",
                            downtime_row["detail"])
            assert passed == all(s["success"] == "true" for s in shown)
            assert passed == workload["pass_sla"]
            failed_criteria += sum(s["success"] != "true" for s in shown)
            verdicts.append(passed)
            if shots:
                page.screenshot(path=shots / f"{slug(workload_titles(result)[index])}"
                                             f"-overview.png", full_page=True)

    # sla-check: one row per criterion, workload by workload, sorted by criterion;
    # its exit code is the number of failed criteria.
    assert result["sla_check_exit_code"] == failed_criteria
    if "sla_check_rows" in result:
        assert [(r["criterion"], r["status"], r["detail"])
                for r in result["sla_check_rows"]] == [
            (c["criterion"], "PASS" if c["success"] else "FAIL", c["detail"])
            for w in workloads(result)
            for c in sorted(w["sla_results"]["sla"], key=lambda c: c["criterion"])]
    return verdicts


def check_aggregated(result: dict, browser: ReportBrowser, variant: str,
                     shots: Path | None = None) -> None:
    """Scenario Data, Aggregated: the trends, one point per iteration, and the host
    pair table."""
    html = Path(result["html"] if variant == "html" else result["html_static"])
    with browser.page(html) as page:
        for index, workload in enumerate(workloads(result)):
            open_workload(page, result, index, tab="Scenario Data")
            click(page, page.locator("#content-main span.link", has_text="Aggregated"))
            additive = [it["output"]["additive"] for it in workload["data"]]
            titles = [c["title"] for c in additive[0]]
            assert titles == list(charts.ADDITIVE_TITLES)
            assert len(additive) > 1, "one iteration: Rally shows a table instead"
            for position, chart in enumerate(additive[0]):
                if chart["chart_plugin"] == "StatsTable":
                    check_stats_table(page, chart, [its[position] for its in additive])
                    continue
                # Rally pairs additive charts across iterations by position; the x
                # axis is the iteration's number in the report, from 1.
                series = [[name, [[number, its[position]["data"][k][1]]
                                  for number, its in enumerate(additive, start=1)]]
                          for k, (name, _) in enumerate(chart["data"])]
                drawn = rendered(chart_widget(page, chart))
                check_drawn_chart(drawn, chart, series, "StackedArea")
            if shots:
                page.screenshot(path=shots / f"{slug(workload_titles(result)[index])}"
                                             f"-aggregated.png", full_page=True)


def check_stats_table(page: Page, chart: dict, per_iteration: list[dict]) -> None:
    """A StatsTable: one row per name over every iteration's rows, its Count and
    Max what the iterations gave."""
    values: dict[str, list[float]] = {}
    for it in per_iteration:
        for name, value in it["data"]:
            values.setdefault(name, []).append(value)
    shown = {row[0]: row for row in table_rows(chart_widget(page, chart))}
    assert set(shown) == set(values), (shown, values)
    for name, numbers in values.items():
        assert int(shown[name][-1]) == len(numbers), name
        assert float(shown[name][5]) == pytest.approx(max(numbers), abs=0.001), name


def _edges(xy: list[list[float]]) -> list[float]:
    """x of each vertical step in a series drawn on screen."""
    return [a[0] for a, b in zip(xy, xy[1:]) if abs(a[0] - b[0]) < 0.5
            and abs(a[1] - b[1]) > 1]


def check_per_iteration(result: dict, browser: ReportBrowser, variant: str,
                        shots: Path | None = None) -> list[list[int]]:
    """Scenario Data, Per iteration, every iteration: the summary table, the probe
    timeline with the migration marked, the outage table. Returns each workload's
    outage counts, iteration by iteration."""
    html = Path(result["html"] if variant == "html" else result["html_static"])
    outages = []
    docs_workload = next((i for i, w in enumerate(workloads(result)) if not w["pass_sla"]), 0)
    with browser.page(html) as page:
        for index, workload in enumerate(workloads(result)):
            open_workload(page, result, index, tab="Scenario Data")
            click(page, page.locator("#content-main span.link", has_text="Per iteration"))
            select = page.locator("#content-main select[ng-model=outputIteration]")
            # Rally keeps the iteration chosen in the previous workload: where
            # this one has fewer, Angular adds a blank option until one is chosen.
            choose_iteration(page, 0)
            expect(select.locator("option")).to_have_text(
                [f"Iteration {i}" for i in range(len(workload["data"]))])
            counts = []
            for number, iteration in enumerate(workload["data"]):
                choose_iteration(page, number)
                complete = {c["title"]: c for c in iteration["output"]["complete"]}
                shown = page.locator("#content-main div[widget][title]")
                assert shown.evaluate_all("els => els.map(e => e.getAttribute('title'))") \
                    == list(complete)

                summary = complete[charts.SUMMARY_TITLE]
                assert table_rows(chart_widget(page, summary)) == [
                    [js_text(v) for v in row] for row in summary["data"]["rows"]]

                timeline = complete[charts.TIMELINE_TITLE]
                drawn = rendered(chart_widget(page, timeline))
                check_drawn_chart(drawn, timeline, timeline["data"], "Lines")
                points = {p["key"]: p["xy"] for p in drawn["points"]}
                migration = points["live migration"]
                migrations = [m for m in dict(timeline["data"])["live migration"]]
                assert len(_edges(migration)) == len(_edges([[x, y] for x, y in migrations]))
                assert len(_edges(migration)) >= 2
                # The first migration starts at x = 0, where its box rises ...
                [zero] = [t["x"] for t in drawn["ticks"] if t["text"] == "0"]
                assert abs(_edges(migration)[0] - zero) < 1.5, (_edges(migration), zero)
                # ... and the box frames both probe lines, never drawn over them.
                probe_ys = [y for key in ("probe ok", "probe failed") for _, y in points[key]]
                mig_ys = [y for _, y in migration]
                assert min(mig_ys) < min(probe_ys) - 2 and max(mig_ys) > max(probe_ys) + 2

                table = complete[charts.OUTAGES_TITLE]
                rows = table_rows(chart_widget(page, table))
                assert rows == [[js_text(v) for v in row] for row in table["data"]["rows"]]
                counts.append(len(rows))
                if shots and number == 0:
                    name = slug(workload_titles(result)[index])
                    page.screenshot(path=shots / f"{name}-per-iteration.png", full_page=True)
                    if index == docs_workload:
                        page.screenshot(path=shots / DOCS_SHOT, full_page=True)
            outages.append(counts)
    return outages


def check_sla_names_the_worst_iteration(result: dict, browser: ReportBrowser,
                                        variant: str) -> None:
    """The SLA detail's "iteration N", as the Overview shows it, is the N-th iteration
    of the report (the x of the Aggregated charts; "Iteration N-1" in Per iteration)
    and holds the worst metadata downtime."""
    html = Path(result["html"] if variant == "html" else result["html_static"])
    with browser.page(html) as page:
        for index, workload in enumerate(workloads(result)):
            open_workload(page, result, index, tab="Overview")
            [criterion] = [s for s in shown_sla(page) if s["criterion"] == "metadata_downtime"]
            figure, number = re.search(r"worst metadata downtime (\d+\.\d+) s "
                                       r"\(iteration (\d+)\)", criterion["detail"]).groups()
            click(page, page.locator("#content-main ul.tabs li", has_text="Scenario Data"))
            click(page, page.locator("#content-main span.link", has_text="Per iteration"))
            downtimes = []
            for shown in range(len(workload["data"])):
                choose_iteration(page, shown)
                summary = chart_widget(page, {"title": charts.SUMMARY_TITLE})
                downtimes.append(float(dict(table_rows(summary))[charts.ROW_DOWNTIME]))
            # The table shows 3 decimals of the figure the SLA formats with 2.
            assert downtimes[int(number) - 1] == max(downtimes), (criterion["detail"],
                                                                  downtimes)
            assert float(figure) == pytest.approx(max(downtimes), abs=0.0051), (
                criterion["detail"], downtimes)


# --- rally task trends -------------------------------------------------------------

def trends_data(html: Path) -> list[dict]:
    """The workloads a `rally task trends --html-static` page plots, as it holds them."""
    match = re.search(r"\$scope\.data = (\[.*?\]);\n", html.read_text(), re.DOTALL)
    assert match, "no trends data in the page"
    return json.loads(match.group(1))


def check_trends_draw_metadata_downtime(trends: Path, browser: ReportBrowser) -> None:
    """The trends page, offline, draws the metadata.downtime chart (min ... avg
    series) with no script error; a screenshot goes to artifacts/trends/."""
    TRENDS_SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    page = browser.context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(exc.message))
    try:
        page.goto(Path(trends).resolve().as_uri())
        page.locator("#content-main table tbody tr").first.click()
        page.locator("ul.tabs li", has_text="Atomic actions").click()
        title = page.locator(".chart-title", has_text="metadata.downtime").first
        title.wait_for()
        drawn(page)
        chart = title.locator("xpath=following-sibling::div[1]")
        chart.locator("path.nv-line").first.wait_for()
        assert chart.locator("g.nv-series").count() >= 6   # min ... avg, drawn
        title.scroll_into_view_if_needed()
        page.screenshot(path=str(TRENDS_SHOTS_DIR / "trends-metadata-downtime.png"),
                        full_page=False)
    finally:
        page.close()
    assert errors == [] and browser.blocked == []
