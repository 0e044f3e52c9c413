"""The sg transport's backend choice per LUN (`sg_backend`), read by the real loader."""
from __future__ import annotations

from stonewall.config.loader import load_config
from stonewall.config.model import SgBackend

from .conftest import ProblemsOf, WriteConfig

TEXT = """\
    cluster: lab
    transport: sg
    nodes: [{{name: kvm-a, id: 1}}]
    luns:
      - {{name: d0, role: shared, alias: mpatha}}
      - {{name: d1, role: shared, alias: mpathb, sg_backend: {backend}}}
    fencing: [{{level: storage, timeout: 10}}]
    """


def test_sgio_is_the_default_and_sg_persist_is_chosen_per_lun(write_config: WriteConfig):
    config = load_config(write_config(TEXT.format(backend="sg_persist")))
    assert config.lun("d0").sg_backend is SgBackend.SGIO
    assert config.lun("d1").sg_backend is SgBackend.SG_PERSIST


def test_an_unknown_backend_is_one_clear_problem(write_config: WriteConfig,
                                                 problems_of: ProblemsOf):
    problems = problems_of(write_config(TEXT.format(backend="sg_io")))
    assert len(problems) == 1
    line, key, message = problems[0]
    assert (line, key) == (6, "luns[1].sg_backend")
    assert "sgio" in message and "sg_persist" in message
