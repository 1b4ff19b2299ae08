"""Hand-made probe logs, reports and ping runs for the plugin tests."""

from rally_metadata_downtime.analysis import analyse
from rally_metadata_downtime.ping_log import NetworkDowntime, NetworkOutage
from rally_metadata_downtime.plugins import charts
from rally_metadata_downtime.probe_log import parse_probe_log
from rally_metadata_downtime.records import Measurement, Migration

HEADER = "# rmd-probe v1 interval=0.2 timeout=1 mode=hostname expect= started=99.90\n"


def probe_text(*states, start=100.0, step=0.2, stopped=True):
    """One probe per state ("OK" or a failure reason), launched every `step` s."""
    lines = [HEADER]
    for seq, state in enumerate(states, start=1):
        t = start + (seq - 1) * step
        verdict = "OK http=200" if state == "OK" else f"FAIL {state}"
        lines.append(f"P {seq} {t:.2f} {t + 0.01:.2f} {verdict}\n")
    if stopped:
        lines.append(f"# stopped {start + len(states) * step:.2f}\n")
    return "".join(lines)


def outage_log(before=5, failed=10, after=10, reason="curl=28"):
    """OKs, then `failed` failures, then OKs: one outage of failed x 0.2 s."""
    return parse_probe_log(probe_text(*(["OK"] * before + [reason] * failed
                                        + ["OK"] * after)))


def network(lost=0, sent=50, interval=0.2):
    outages = (NetworkOutage(10, lost, 1000.0, 1000.0 + lost * interval),) if lost else ()
    return NetworkDowntime(interval=interval, sent=sent, received=sent - lost,
                           outages=outages)


def measured(before=5, failed=10, after=10, lost=0, recovered_after=101.0,
             migration=(100.9, 101.8)):
    """A complete Measurement of an outage log; migration on guest uptime."""
    log = outage_log(before, failed, after)
    ping = network(lost)
    return Measurement(log=log, report=analyse(log, recovered_after=recovered_after),
                       networks=[ping],
                       migrations=[Migration(*migration, "compute-1", "compute-2",
                                             network_downtime=ping.total_downtime)])


def iteration(measurement: Measurement, error=None) -> dict:
    """The iteration dict Rally hands to an SLA, with the scenario's real output."""
    record = measurement.record()
    return {"duration": 30.0, "idle_duration": 0.0, "timestamp": 1.0,
            "error": error or [], "atomic_actions": [],
            "output": {"additive": charts.additive_charts(record),
                       "complete": charts.complete_charts(record, measurement.log)}}
