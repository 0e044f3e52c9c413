"""Secrets: where they come from, which files are private enough, and that none is ever shown."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from stonewall.config.errors import ConfigError
from stonewall.config.loader import load_config
from stonewall.config.model import Secret
from stonewall.config.secrets import (
    SecretExposed,
    SecretUnavailable,
    exposure,
    password_file_problems,
    read_secret,
)

from .conftest import ProblemsOf, WriteConfig

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")


def _secret_file(tmp_path: Path, text: str, mode: int, uid: int | None = None,
                 gid: int | None = None) -> str:
    path = tmp_path / "bmc.pw"
    path.write_text(text)
    path.chmod(mode)
    if uid is not None or gid is not None:
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
    return str(path)


def test_a_private_password_file_is_read_without_its_final_newline(tmp_path: Path) -> None:
    path = _secret_file(tmp_path, "s3cret pass\n", 0o600)
    assert read_secret(Secret(file=path), {}) == "s3cret pass"
    Path(path).write_text("crlf\r\n")
    assert read_secret(Secret(file=path), {}) == "crlf"


@pytest.mark.parametrize(("mode", "who"), [(0o644, "others"), (0o604, "others"), (0o620, "group gid")])
def test_a_password_file_others_can_read_or_change_is_refused_naming_file_and_mode(
        tmp_path: Path, mode: int, who: str) -> None:
    path = _secret_file(tmp_path, "s3cret", mode, gid=0 if who == "others" else None)
    with pytest.raises(SecretExposed) as caught:
        read_secret(Secret(file=path), {})
    assert caught.value.path == path
    assert f"mode {mode:04o} gives {who}" in str(caught.value)
    assert str(caught.value).startswith(f"{path}: ") and "s3cret" not in str(caught.value)


@needs_root
def test_group_read_is_allowed_only_for_the_root_group(tmp_path: Path) -> None:
    root_group = _secret_file(tmp_path, "s3cret", 0o640, gid=0)
    assert read_secret(Secret(file=root_group), {}) == "s3cret"
    os.chown(root_group, -1, NOBODY)
    with pytest.raises(SecretExposed, match=f"mode 0640 gives group gid {NOBODY} access"):
        read_secret(Secret(file=root_group), {})


@needs_root
def test_a_password_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = _secret_file(tmp_path, "s3cret", 0o600, uid=NOBODY)
    with pytest.raises(SecretExposed, match=f"owned by uid {NOBODY}, not root"):
        read_secret(Secret(file=path), {})


def test_exposure_judges_modes_by_the_documented_rule(tmp_path: Path) -> None:
    path = Path(_secret_file(tmp_path, "x", 0o600, gid=0))
    assert exposure(path.stat()) is None
    path.chmod(0o400)
    assert exposure(path.stat()) is None
    path.chmod(0o660)
    assert exposure(path.stat()) == "mode 0660 gives group gid 0 access"


@pytest.mark.parametrize(("text", "reason"), [("", "is empty"), ("\n", "is empty"),
                                              (b"\xff\xfe".decode("latin-1"), "is not UTF-8 text")])
def test_an_empty_or_binary_password_file_is_unavailable(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "bmc.pw"
    path.write_bytes(text.encode("latin-1"))
    path.chmod(0o600)
    with pytest.raises(SecretUnavailable, match=reason):
        read_secret(Secret(file=str(path)), {})


def test_a_missing_password_file_is_unavailable(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.pw")
    with pytest.raises(SecretUnavailable) as caught:
        read_secret(Secret(file=path), {})
    assert str(caught.value) == f"secret file {path} cannot be read: No such file or directory"


def test_a_password_from_the_environment(tmp_path: Path) -> None:
    assert read_secret(Secret(env="BMC_PW"), {"BMC_PW": "s3cret"}) == "s3cret"
    with pytest.raises(SecretUnavailable, match="environment variable BMC_PW is not set"):
        read_secret(Secret(env="BMC_PW"), {})
    with pytest.raises(SecretUnavailable, match="environment variable BMC_PW is empty"):
        read_secret(Secret(env="BMC_PW"), {"BMC_PW": ""})


def test_no_source_is_unavailable() -> None:
    with pytest.raises(SecretUnavailable, match="no password source"):
        read_secret(Secret(), {})


INLINE = """\
cluster: lab
nodes:
  - name: kvm-a
    id: 1
    ipmi: {address: 127.0.0.1, username: admin, password: "hunter2"}
luns: [{name: d0, role: shared, transport: sg, wwid: "3600a0b800000000000000000000000aa"}]
fencing: [{level: storage, timeout: 10}]
"""


def test_an_inline_password_is_accepted_in_a_private_config_file(write_config: WriteConfig) -> None:
    config = load_config(write_config(INLINE, mode=0o600))
    assert read_secret(config.node("kvm-a").ipmi.password, {}) == "hunter2"


def test_an_inline_password_in_a_config_file_others_can_read_is_refused(
        write_config: WriteConfig, problems_of: ProblemsOf) -> None:
    path = write_config(INLINE, mode=0o644)
    problems = problems_of(path)
    assert problems == [(5, "nodes[0].ipmi.password",
                         "an inline password is allowed only in a private config file, and this "
                         "one is not (mode 0644 gives others access); use password_file or "
                         f"password_env, or chmod 600 {path}")]
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "hunter2" not in str(caught.value)


def test_no_representation_of_the_config_shows_a_secret(write_config: WriteConfig) -> None:
    config = load_config(write_config(INLINE))
    ipmi = config.node("kvm-a").ipmi
    for shown in (repr(config), str(config), repr(ipmi), str(ipmi.password), f"{config.nodes}"):
        assert "hunter2" not in shown
    assert repr(ipmi.password) == "Secret(inline)"
    assert repr(Secret(file="/etc/a.pw")) == "Secret(file=/etc/a.pw)"
    assert repr(Secret(env="A_PW")) == "Secret(env=A_PW)"


def test_a_yaml_syntax_error_does_not_quote_the_line_with_the_password(
        write_config: WriteConfig, problems_of: ProblemsOf) -> None:
    path = write_config(INLINE.replace('password: "hunter2"}', 'password: "hunter2" ]'))
    ((line, key, message),) = problems_of(path)
    assert line == 5 and message.startswith("YAML syntax:") and "hunter2" not in message


def test_password_file_problems_names_each_unusable_file(write_config: WriteConfig,
                                                         tmp_path: Path) -> None:
    good = _secret_file(tmp_path, "s3cret", 0o600)
    loose = tmp_path / "loose.pw"
    loose.write_text("s3cret")
    loose.chmod(0o644)
    ipmi = "address: 127.0.0.1, username: admin"
    path = write_config(f"""\
        cluster: lab
        nodes:
          - {{name: kvm-a, id: 1, ipmi: {{{ipmi}, password_file: {good}}}}}
          - {{name: kvm-b, id: 2, ipmi: {{{ipmi}, password_file: {loose}}}}}
          - {{name: kvm-c, id: 3, ipmi: {{{ipmi}, password_file: {tmp_path}/absent}}}}
          - {{name: kvm-d, id: 4, ipmi: {{{ipmi}, password_env: UNSET_PW}}}}
        luns: [{{name: d0, role: shared, transport: sg, wwid: "3600a0b800000000000000000000000aa"}}]
        fencing: [{{level: storage, timeout: 10}}]
        """)
    problems = password_file_problems(load_config(path))
    # The line of each key, like every other problem (the file is read after loading).
    assert [(p.file, p.line, p.key) for p in problems] == [(path, 4, "nodes[1].ipmi.password_file"),
                                                           (path, 5, "nodes[2].ipmi.password_file")]
    assert problems[0].message.startswith(f"{loose}: mode 0644 gives others access")
    assert problems[1].message == f"secret file {tmp_path}/absent cannot be read: No such file or directory"


@pytest.mark.parametrize(("value", "message"), [
    ('""', "the value is not valid; expected a non-empty password"),
    (f'"{"hunter2" * 600}"', "the value is longer than 4096 characters; expected a non-empty password"),
])
def test_a_bad_inline_password_is_refused_without_quoting_it(write_config: WriteConfig,
                                                             problems_of: ProblemsOf,
                                                             value: str, message: str) -> None:
    path = write_config(INLINE.replace('"hunter2"', value))
    assert problems_of(path) == [(5, "nodes[0].ipmi.password", message)]
