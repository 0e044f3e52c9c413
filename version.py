"""The installed stonewall's version, from its package metadata (one place for every
`--version`)."""
from __future__ import annotations


def package_version() -> str:
    """The version pip or the Debian package installed, e.g. "0.1.0"."""
    from importlib import metadata  # here, not at the top: the fence path never needs it

    try:
        return metadata.version("stonewall")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"
