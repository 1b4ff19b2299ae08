"""The main job: run the sample task against the cloud lab and point at the HTML report.

    python -m tests.lab.demo [--out-dir DIR] [--task-args JSON]

Starts the cloud lab (tests/lab/cloud: the real OpenStack services; needs root and
tools/install-lab-cloud.sh), creates a Rally environment for it in a private Rally
home, runs samples/live_migrate_metadata.yaml with samples/cloud-args.yaml, writes
the HTML and JSON reports, prints each iteration's figures and the SLA verdict,
stops the lab, and ends with the path of the HTML report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from tests.lab.harness import REPO_ROOT
from tests.lab.rally_report import iteration_figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.demo",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "artifacts" / "demo")
    parser.add_argument("--task-args", type=json.loads, default=None,
                        help="JSON dict over samples/cloud-args.yaml")
    args = parser.parse_args(argv)

    from tests.lab.cloud import rally_task
    from tests.lab.cloud.__main__ import bench_line
    from tests.lab.cloud.lab import Cloud
    # A short path: the services' unix sockets are limited to 107 bytes.
    state = Path(tempfile.mkdtemp(prefix="rmdc-demo-", dir="/tmp"))
    cloud = Cloud(state)
    try:
        facts = cloud.up()
        print(bench_line(cloud, facts), flush=True)
        result = rally_task.run_sample(facts, state, args.out_dir.resolve(),
                                       task_args=args.task_args, html=True)
        sla_check = result["rally_home"].sla_check(result["task_uuid"]).returncode
    finally:
        left = cloud.down()
        shutil.rmtree(state, ignore_errors=True)
    for row in iteration_figures(result["report"]):
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    passed = all(t["pass_sla"] for t in result["report"]["tasks"])
    print(f"SLA: {'PASS' if passed else 'FAIL'} (rally task start exited "
          f"{result['exit_code']}; sla-check exited {sla_check})")
    leaks = {**result["leftovers"], **({"guests": result["guests_left"]}
                                       if result["guests_left"] else {})}
    if leaks:
        print(f"LEAK: left in the cloud after the task: {leaks}")
    if left:
        print(f"LEAK: the lab could not remove {', '.join(left)}")
    print(f"HTML report: {result['html']}")
    return 1 if leaks or left else 0


if __name__ == "__main__":
    sys.exit(main())
