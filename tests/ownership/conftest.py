"""The ownership tests use the shared two-node lab (tests/lab_fixtures.py)."""
from ..lab_fixtures import lab, observer  # noqa: F401  (pytest fixtures)
