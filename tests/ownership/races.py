"""A path device that lets the peer's PREEMPT land just before our REGISTER AND IGNORE
EXISTING KEY: the race between "our key is still there" and registering a new or lapsed
nexus (DESIGN section 3)."""
from __future__ import annotations

from typing import Any, Callable

from stonewall.storage.scsi.device import PrDevice


class PreemptedBeforeRegistering:
    """Wraps `device`; runs `preempt` once, right before the first REGISTER AND IGNORE
    EXISTING KEY (probes, REGISTER key -> key, pass through untouched)."""

    def __init__(self, device: PrDevice, preempt: Callable[[], Any]) -> None:
        self.device = device
        self.preempt: Callable[[], Any] | None = preempt

    def register(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("ignore_existing") and self.preempt is not None:
            preempt, self.preempt = self.preempt, None
            preempt()
        self.device.register(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.device, name)
