"""Serve one OpenStack WSGI application with gunicorn, from the services' venv:

    VENV/bin/python wsgi_serve.py SERVICE PORT PIDFILE [THREADS [SERVICE ARGS...]]

Run as a script (not as tests.lab...): it must import nothing of this repo. The
services parse the process's own argv with oslo.config (Neutron's `config.init(
sys.argv[1:])`), so argv is replaced by SERVICE ARGS before anything of theirs is
imported; most find their config files through their OS_<SERVICE>_CONFIG_DIR
variable, Cinder only through `--config-file` there.
"""

import importlib
import os
import sys

# service -> (module, attribute or factory)
APPS = {
    "keystone": ("keystone.server.wsgi", "initialize_public_application()"),
    "placement": ("placement.wsgi.api", "application"),
    "nova-api": ("nova.wsgi.osapi_compute", "application"),
    "nova-metadata": ("nova.wsgi.metadata", "application"),
    "glance": ("glance.wsgi.api", "application"),
    "neutron": ("neutron.wsgi.api", "application"),
    "cinder-api": ("cinder.wsgi.api", "application"),
}


def main() -> None:
    # Running as a script puts this directory first on sys.path, where openstack.py
    # would shadow the openstack (SDK) package the services import.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    service, port, pidfile = sys.argv[1:4]
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    sys.argv = [f"rmdc-{service}", *sys.argv[5:]]
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            for key, value in {
                "bind": f"127.0.0.1:{port}", "workers": 1, "worker_class": "gthread",
                "threads": threads, "timeout": 300, "graceful_timeout": 5,
                "pidfile": pidfile, "proc_name": f"rmdc-{service}",
                "accesslog": None, "errorlog": "-", "loglevel": "warning",
                # Longer than a client leaves a pooled connection idle: a server
                # closing one as the client reuses it resets the client's request
                # (novaclient does not retry it; seen under two CPU hogs).
                "keepalive": 75,
            }.items():
                self.cfg.set(key, value)

        def load(self):
            module, attr = APPS[service]
            mod = importlib.import_module(module)
            if attr.endswith("()"):
                return getattr(mod, attr[:-2])()
            return getattr(mod, attr)

    Server().run()


if __name__ == "__main__":
    main()
