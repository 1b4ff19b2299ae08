"""Run nova-compute with the lab's virt driver, from the services' venv:

    VENV/bin/python compute_main.py --config-file A --config-file B

Nova loads `compute_driver` only from its own nova.virt package (it prefixes
"nova.virt."), so this registers tests/lab/cloud/virt.py as nova.virt.rmdc_lab before
handing over to nova-compute's own main(); nova.conf says
`compute_driver = rmdc_lab.LabDriver`.
"""

import importlib
import importlib.util
import os
import sys


def main() -> None:
    # Running as a script puts this directory first on sys.path, where openstack.py
    # would shadow the openstack (SDK) package the services import.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    # nova.cmd.compute picks Nova's concurrency backend (native threads) on import:
    # it must come before anything else of Nova's.
    compute = importlib.import_module("nova.cmd.compute")
    nova_virt = importlib.import_module("nova.virt")

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "virt.py")
    spec = importlib.util.spec_from_file_location("nova.virt.rmdc_lab", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["nova.virt.rmdc_lab"] = module
    nova_virt.rmdc_lab = module
    spec.loader.exec_module(module)
    sys.argv[0] = "nova-compute"
    sys.exit(compute.main())


if __name__ == "__main__":
    main()
