"""Benchmarks: python -m tests.bench {accuracy|scale|cost} [options]. They print tables."""

import sys

from tests.bench import accuracy, cost, scale

BENCHMARKS = {"accuracy": accuracy.main, "scale": scale.main, "cost": cost.main}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: python -m tests.bench {{{'|'.join(BENCHMARKS)}}} [options]")
        return 2
    return BENCHMARKS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
