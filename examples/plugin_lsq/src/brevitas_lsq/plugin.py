"""Entry point module: registers ``("scaling", "lsq")``."""

from brevitas.plugins import hookimpl
from brevitas_lsq.scaling import LsqScaling


@hookimpl
def brevitas_register(registry):
    registry.add("scaling", "lsq", LsqScaling, description="LSQ learned step size (example plugin)")
