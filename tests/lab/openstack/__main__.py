"""Serve the lab: python -m tests.lab.openstack --state-dir DIR [--fake].

Starts the fabric (namespace guests; needs root) unless --fake, then the API on
127.0.0.1, writes DIR/api.json ({"url", "pid"}) once it listens, and on SIGTERM
or SIGINT deletes every server, tears the fabric down and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from tests.lab.fabric import Fabric
from tests.lab.openstack.app import make_app
from tests.lab.openstack.config import LabConfig
from tests.lab.openstack.driver import FabricDriver, FakeDriver


async def serve(state_dir: Path, port: int, fake: bool, prefix: str) -> None:
    config = LabConfig()
    fabric = None
    if fake:
        driver = FakeDriver()
    else:
        fabric = Fabric(state_dir / "fabric", prefix=prefix,
                        fixed_gateway=config.fixed_gateway,
                        floating_gateway=config.floating_gateway,
                        default_profile=config.fault_profile)
        fabric.setup()
        driver = FabricDriver(fabric)
    try:
        app = make_app(driver, config, state_dir)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
        await site.start()
        bound = runner.addresses[0][1]
        url = f"http://127.0.0.1:{bound}"
        tmp = state_dir / "api.json.tmp"
        tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
        tmp.rename(state_dir / "api.json")
        logging.info("lab API listening on %s", url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()
    finally:
        if fabric is not None:
            driver.close()
            fabric.teardown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.openstack")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fake", action="store_true",
                        help="no namespace guests (API-only tests)")
    parser.add_argument("--prefix", default="rmdlab",
                        help="name prefix of the lab's namespaces and links")
    args = parser.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.state_dir.resolve(), args.port, args.fake, args.prefix))
    return 0


if __name__ == "__main__":
    sys.exit(main())
