"""CHAP against tgtd: a target that requires it admits only the initiator with the secret,
and the secret shows in no message, repr or error (tests/secret_guard.py watches the rest)."""
from __future__ import annotations

import pytest

from stonewall.clock import Deadline
from stonewall.lab.identities import ARRAY_IQN, CHAP_SECRET, CHAP_USER, NODE_A_IQN
from stonewall.lab.tgtd import Tgtd
from stonewall.storage.scsi.commands import CommandPrDevice
from stonewall.storage.scsi.errors import TransportError
from stonewall.storage.scsi.iscsi import Chap, IscsiSession


def session(tgtd: Tgtd, chap: Chap | None) -> IscsiSession:
    return IscsiSession(tgtd.portals[0], ARRAY_IQN, 1, NODE_A_IQN, chap=chap)


def test_a_target_that_requires_chap_admits_only_the_initiator_with_the_secret(
        tgtd: Tgtd) -> None:
    tgtd.require_chap(1, CHAP_USER, CHAP_SECRET)
    admitted = session(tgtd, Chap(CHAP_USER, CHAP_SECRET))
    admitted.connect(Deadline.after(5))
    try:
        assert CommandPrDevice(admitted).read_keys(Deadline.after(5)).keys == ()
    finally:
        admitted.close()
    for chap in (None, Chap(CHAP_USER, "not-the-secret")):
        refused = session(tgtd, chap)
        with pytest.raises(TransportError, match="login failed") as caught:
            refused.connect(Deadline.after(5))
        assert "not-the-secret" not in str(caught.value)


def test_the_secret_is_hidden_in_reprs() -> None:
    chap = Chap(CHAP_USER, CHAP_SECRET)
    shown = repr(chap) + repr(IscsiSession("127.0.0.1:3260", ARRAY_IQN, 1, NODE_A_IQN, chap=chap))
    assert CHAP_SECRET not in shown and CHAP_USER in shown
