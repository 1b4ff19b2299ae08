"""An iteration's downtime as Rally atomic actions. Pure: no Rally calls, no I/O.

`rally task trends`, the exporters (elastic) and the per-atomic SLAs
(`max_avg_duration_per_atomic`) read durations and atomic actions only, so the two
downtimes also travel as atomic actions, on the Rally host's clock:

- `metadata.downtime`: one per measured iteration, lasting the total metadata
  downtime, from the first outage's start (from the end of the last migration, or
  of the watch, when there was none); failed when metadata did not recover. Trends read root actions
  only, and Rally merges same-named ones per iteration, so this root is the one
  figure per iteration that trends and SLAs need. Its children, one
  `metadata.outage` per outage, keep each outage's own window.
- `metadata.<family>.downtime` (e.g. `metadata.ipv6.downtime`) with
  `metadata.<family>.outage` children, likewise, for each family of
  metadata_families after the first (whose figures are `metadata.downtime`).
- `network.downtime` with `network.outage` children, likewise, from ping.

The roots overlap the steps they happened during (the migration, the recovery
wait): Rally's atomic-duration charts stack them on top, which the report's
descriptions of those charts cannot say; docs/design.md explains the choice.
"""

from __future__ import annotations

from rally_metadata_downtime.records import IterationRecord, MetadataFigures

METADATA_DOWNTIME = "metadata.downtime"
METADATA_OUTAGE = "metadata.outage"
NETWORK_DOWNTIME = "network.downtime"
NETWORK_OUTAGE = "network.outage"


def _action(name: str, start: float, end: float, children=(), failed=False) -> dict:
    action = {"name": name, "started_at": start, "finished_at": end,
              "children": list(children)}
    if failed:
        action["failed"] = True
    return action


def _quiet_start(record: IterationRecord) -> float | None:
    """Where a root without outages begins (guest clock): the end of the last
    migration, or of the watch."""
    if record.migrations:
        return record.migrations[-1].end
    return record.watch.end if record.watch is not None else None


def _metadata_actions(figures: MetadataFigures, offset: float, quiet: float | None,
                      root: str, child: str) -> list[dict]:
    """One family's root action with its outages as children (none without a start)."""
    outages = [_action(child, o.start + offset, o.end + offset, failed=o.unrecovered)
               for o in figures.outages]
    if outages:
        start = outages[0]["started_at"]
    elif quiet is not None:
        start = quiet + offset
    else:
        return []
    return [_action(root, start, start + figures.downtime, outages,
                    failed=not figures.recovered)]


def downtime_actions(record: IterationRecord) -> list[dict]:
    """The atomic actions (Rally's AtomicAction dicts) of an iteration's downtime."""
    actions = []
    offset = record.clock_offset
    quiet = _quiet_start(record)
    if record.metadata is not None and offset is not None:
        actions += _metadata_actions(record.metadata, offset, quiet,
                                     METADATA_DOWNTIME, METADATA_OUTAGE)
        for figures in record.more_metadata:
            actions += _metadata_actions(figures, offset, quiet,
                                         f"metadata.{figures.family}.downtime",
                                         f"metadata.{figures.family}.outage")
    if record.network is not None:
        outages = [_action(NETWORK_OUTAGE, start, end)
                   for start, end in record.network.outages]
        start = (outages[0]["started_at"] if outages else
                 quiet + offset if quiet is not None and offset is not None else None)
        if start is not None:
            actions.append(_action(NETWORK_DOWNTIME, start,
                                   start + record.network.downtime, outages))
    return actions
