"""The error of planning a node's paths, apart from storage/paths.py so that a command can
catch it without importing the session stack."""
from __future__ import annotations


class PathSetupError(Exception):
    """The node or LUN lacks what its transport needs."""
