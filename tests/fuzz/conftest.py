"""The fuzzers that run real entry points use the fencing tests' two-node lab."""
from __future__ import annotations

from ..fencing.conftest import lab, lab_extra, programs  # noqa: F401  (pytest fixtures)
from ..lab_fixtures import observer  # noqa: F401
