"""Benchmarks: python -m tests.bench {accuracy|scale|cost|lab|real-outage|real-accuracy}
[options]. They print tables (lab: the cloud lab's start-up time and each service's
memory; real-outage: the metadata downtime the real agent and OVN produce in
migrations; real-accuracy: our figures against faults in the real metadata path)."""

import sys

from tests.bench import accuracy, cost, real_accuracy, real_outage, scale
from tests.lab.cloud.__main__ import main as cloud_main

BENCHMARKS = {"accuracy": accuracy.main, "scale": scale.main, "cost": cost.main,
              "lab": lambda argv: cloud_main(["bench", *argv]),
              "real-outage": real_outage.main, "real-accuracy": real_accuracy.main}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: python -m tests.bench {{{'|'.join(BENCHMARKS)}}} [options]")
        return 2
    return BENCHMARKS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
