"""`config check` reads each fence agent's own metadata (Debian's fence-agents): unknown and
missing options, values a select does not allow and a missing agent are errors with a line."""
from __future__ import annotations

from pathlib import Path

from stonewall.config.agent_check import agent_problems
from stonewall.config.loader import load_config
from stonewall.power.agent_metadata import MetadataCache

from .conftest import WriteConfig

CONFIG = """\
cluster: lab
nodes:
  - name: kvm-a
    id: 1
    fence_devices:
      pdu:
        - agent: fence_apc_snmp
          options: {{ip: 192.0.2.10, plug: "1", snmp_version: "3", snmp_auth_prot: SHA}}
          secret_file: {secret}
        - agent: fence_eaton_snmp
          options:
            ip: 192.0.2.11
            plgu: "1"
            snmp_auth_prot: SHA256
  - name: kvm-b
    id: 2
    fence_devices:
      pdu:
        - agent: fence_no_such_pdu
          options: {{ip: 192.0.2.12, plug: "2"}}
luns: [{{name: d0, role: shared, transport: sg, wwid: "3600a098038304437415d4b6a59684a51"}}]
fencing:
  - {{level: storage, timeout: 10}}
  - {{level: agent, devices: pdu, timeout: 20}}
"""


def test_agent_options_are_checked_against_the_agents_metadata(write_config: WriteConfig,
                                                               tmp_path: Path) -> None:
    secret = tmp_path / "pdu.secret"
    secret.write_text("key\n")
    secret.chmod(0o600)
    path = write_config(CONFIG.format(secret=secret))
    cache = MetadataCache(str(tmp_path / "cache"))
    problems = sorted((p.line, p.key, p.message)
                      for p in agent_problems(load_config(path), cache))
    assert problems == [
        (11, "nodes[0].fence_devices.pdu[1].options",
         "fence_eaton_snmp requires the option plug"),
        (13, "nodes[0].fence_devices.pdu[1].options.plgu",
         "fence_eaton_snmp has no option 'plgu' (did you mean 'plug'?); its options are "
         "listed by `fence_eaton_snmp -o metadata`"),
        (14, "nodes[0].fence_devices.pdu[1].options.snmp_auth_prot",
         "'SHA256' is not a value fence_eaton_snmp accepts for snmp_auth_prot; expected one "
         "of: MD5, SHA"),
        (19, "nodes[1].fence_devices.pdu[0].agent",
         "fence agent fence_no_such_pdu is not installed: install the Debian package "
         "fence-agents (apt-get install fence-agents)"),
    ]
    # The metadata was cached per agent version: a second check reads no agent.
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2


def test_a_secret_file_others_can_read_is_refused(write_config: WriteConfig,
                                                  tmp_path: Path) -> None:
    secret = tmp_path / "pdu.secret"
    secret.write_text("key\n")
    secret.chmod(0o644)
    path = write_config(CONFIG.format(secret=secret))
    problems = agent_problems(load_config(path), MetadataCache(None))
    assert any(p.key == "nodes[0].fence_devices.pdu[0].secret_file" and "mode 0644" in p.message
               for p in problems)


def test_agent_and_fabric_levels_name_a_device_group(write_config: WriteConfig,
                                                     problems_of) -> None:
    path = write_config("""\
        cluster: lab
        nodes:
          - {name: kvm-a, id: 1}
        luns: [{name: d0, role: shared, transport: sg, wwid: "3600a098038304437415d4b6a59684a51"}]
        fencing:
          - {level: storage, timeout: 10}
          - {level: fabric, timeout: 20}
          - {level: storage, timeout: 5, also_after_storage: true}
        """)
    assert problems_of(path) == [
        (7, "fencing[1]", "the fabric level needs devices: the name of the nodes' "
                          "fence_devices group it runs"),
        (8, "fencing[2]", "also_after_storage: is for power and agent levels (a power-off after "
                          "a verified storage fence), not for storage"),
    ]


def test_a_level_naming_a_group_a_node_lacks_is_a_config_error(write_config: WriteConfig,
                                                                problems_of) -> None:
    path = write_config("""\
        cluster: lab
        nodes:
          - {name: kvm-a, id: 1}
        luns: [{name: d0, role: shared, transport: sg, wwid: "3600a098038304437415d4b6a59684a51"}]
        fencing:
          - {level: agent, devices: pdu, timeout: 20, also_after_storage: true}
        """)
    assert problems_of(path) == [
        (6, "fencing[0].also_after_storage", "also_after_storage needs a storage level before "
                                             "this one"),
        (6, "fencing[0].devices", "the agent pdu level needs fence_devices.pdu for every node, "
                                  "and node kvm-a has none"),
    ]


def test_the_three_level_example_in_the_readme_passes_the_agents_own_check() -> None:
    from .test_config_cmd import run

    example = Path(__file__).parents[2] / "examples" / "cluster-three-levels.yaml"
    result = run("--config", str(example), "config", "check", "--skip-secrets")
    assert (result.returncode, result.stderr) == (0, "")
    assert "2. power (timeout 20s), also after storage" in result.stdout
    assert "3. agent pdu (timeout 30s)" in result.stdout
