"""LSQ learned step-size scaling as a Brevitas plugin (example third-party distribution)."""

from brevitas_lsq.scaling import LsqScaling

__all__ = ["LsqScaling"]
