"""`config check` for fence devices: every configured agent is installed, knows every option
given to it and gets every option it requires (from its own metadata), and its secret file is
usable. Problems carry the file and line of the key they are about."""
from __future__ import annotations

from stonewall.config.errors import ConfigProblem
from stonewall.config.loader import problem_log_for
from stonewall.config.model import ClusterConfig
from stonewall.config.secrets import SecretError, read_secret
from stonewall.power.agent import AgentNotInstalled
from stonewall.power.agent_metadata import MetadataCache, MetadataError, option_problems


def agent_problems(config: ClusterConfig, cache: MetadataCache,
                   check_secrets: bool = True) -> list[ConfigProblem]:
    """A problem for each device an agent level could not run as configured."""
    log = problem_log_for(config.source)
    for i, node in enumerate(config.nodes):
        for group, devices in node.fence_devices:
            for j, device in enumerate(devices):
                where = f"nodes[{i}].fence_devices.{group}[{j}]"
                try:
                    metadata = cache.get(device.agent)
                except (AgentNotInstalled, MetadataError) as err:
                    log.add(f"{where}.agent", str(err))
                    continue
                for option, message in option_problems(device, metadata):
                    key = f"{where}.{option}" if option == "secret_option" else \
                        f"{where}.options.{option}" if option else f"{where}.options"
                    log.add(key, message)
                if check_secrets and device.secret is not None and device.secret.file:
                    try:
                        read_secret(device.secret, {})
                    except SecretError as err:
                        log.add(f"{where}.secret_file", str(err))
    return list(log.problems)
