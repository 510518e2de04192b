"""Configuration loading: the shipped and test configs load; mistakes name file and key."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, TEST_CONFIG, need_shared
from triage.config import ConfigError, load_config


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(TEST_CONFIG, target)
    return target


def test_test_config_loads(config):
    assert set(config.tenants) == {"acme", "zenith"}
    acme = config.tenants["acme"]
    assert acme.support_addresses == ["acme@support.test"]
    assert acme.hours.days == (0, 1, 2, 3, 4)
    assert acme.directory.get("PETRA.ADMIN@steelworks.lt").role == "external_admin"
    assert [c.email for c in acme.contacts_for("business")] == ["eva.strand@acme.se"]


def test_shipped_demo_config_loads():
    config = load_config(REPO / "config")
    assert config.tenants, "the demo needs at least one tenant"


def test_eval_config_loads():
    config = load_config(need_shared("eval", "config"))
    assert config.tenants["nordvik"].external_admins_can_add_users is True


def test_unknown_key_names_file_and_key(tmp_path):
    folder = _copy(tmp_path)
    path = folder / "tenants" / "acme.toml"
    path.write_text("open_registraton = true\n" + path.read_text())
    with pytest.raises(ConfigError, match=r"acme\.toml.*open_registraton"):
        load_config(folder)


def test_unknown_contact_key_is_named(tmp_path):
    folder = _copy(tmp_path)
    path = folder / "tenants" / "acme.toml"
    path.write_text(path.read_text() + 'phone = "+46 8 123"\n')
    with pytest.raises(ConfigError, match=r"acme\.toml.*contacts\[0\]\.phone"):
        load_config(folder)


def test_wrong_type_is_an_error(tmp_path):
    folder = _copy(tmp_path)
    path = folder / "tenants" / "zenith.toml"
    path.write_text(path.read_text().replace("open_registration = true", 'open_registration = "yes"'))
    with pytest.raises(ConfigError, match="open_registration.*bool"):
        load_config(folder)


def test_unknown_section_in_service_file(tmp_path):
    folder = _copy(tmp_path)
    (folder / "triage.toml").write_text((folder / "triage.toml").read_text() + "\n[smtp]\nport = 25\n")
    with pytest.raises(ConfigError, match=r"triage\.toml.*\[smtp\]"):
        load_config(folder)


def test_bad_directory_row_names_line(tmp_path):
    folder = _copy(tmp_path)
    csv = folder / "tenants" / "acme.users.csv"
    csv.write_text(csv.read_text() + "x@y.se,X,Y,superuser,active,\n")
    with pytest.raises(ConfigError, match=r"acme\.users\.csv:8: role 'superuser'"):
        load_config(folder)


def test_bad_hours(tmp_path):
    folder = _copy(tmp_path)
    path = folder / "tenants" / "acme.toml"
    path.write_text(path.read_text().replace('start = "08:00"', 'start = "8am"'))
    with pytest.raises(ConfigError, match="support_hours.start"):
        load_config(folder)


def test_widget_secret_from_environment(tmp_path, monkeypatch):
    folder = _copy(tmp_path)
    path = folder / "tenants" / "acme.toml"
    path.write_text(path.read_text().replace('widget_secret = "acme-secret"',
                                             'widget_secret_env = "ACME_WIDGET_SECRET"'))
    monkeypatch.setenv("ACME_WIDGET_SECRET", "from-env")
    assert load_config(folder).tenants["acme"].widget_secret == "from-env"


# -- values with the right type and a wrong meaning fail early, naming file and key -------

def _service(folder: Path, old: str, new: str) -> None:
    path = folder / "triage.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("old, new, pattern", [
    ('[email]\n', '[email]\nlisten = "127.0.0.1"\n', r"triage\.toml: key email\.listen"),
    ('[email]\n', '[email]\nlisten = "127.0.0.1:70000"\n', r"triage\.toml: key email\.listen .*0\.\.65535"),
    ('[email]\n', '[email]\nlisten = "127.0.0.1:²"\n', r"key email\.listen"),
    ('[tenants]\n', '[web]\nlisten = "localhost:http"\n[tenants]\n', r"key web\.listen"),
    ('[service]\n', '[service]\nlow_confidence = 1.7\n', r"key service\.low_confidence must be between 0 and 1"),
    ('[service]\n', '[service]\nlanguages = ["en", "xx"]\n', r"key service\.languages .*'xx'"),
    ('[tenants]\n', '[slack]\napi_url = "slack.com/api"\n[tenants]\n', r"key slack\.api_url must be a http"),
])
def test_meaningless_service_values_are_errors(tmp_path, old, new, pattern):
    folder = _copy(tmp_path)
    _service(folder, old, new)
    with pytest.raises(ConfigError, match=pattern):
        load_config(folder)


def test_slacks_api_url_is_where_the_client_calls_ending_in_a_slash(tmp_path):
    """GovSlack answers at another address, and tests point `triage serve` at a local stand-in;
    slack_sdk joins method names onto the base, so a missing final slash would drop ``api``."""
    folder = _copy(tmp_path)
    assert load_config(folder).slack["api_url"] == "https://slack.com/api/"
    _service(folder, '[tenants]\n', '[slack]\napi_url = "https://slack-gov.com/api"\n[tenants]\n')
    assert load_config(folder).slack["api_url"] == "https://slack-gov.com/api/"


def test_misspelt_time_zone_is_an_error_not_utc(tmp_path):
    folder = _copy(tmp_path)
    path = folder / "tenants" / "acme.toml"
    path.write_text(path.read_text().replace('timezone = "Europe/Stockholm"', 'timezone = "Europe/Stokholm"'))
    with pytest.raises(ConfigError, match=r"acme\.toml: key 'timezone' .*'Europe/Stokholm'"):
        load_config(folder)


def test_relay_url_credentials_are_never_echoed(tmp_path):
    folder = _copy(tmp_path)
    _service(folder, '[email]\n', '[email]\nrelay_url = "http://mailuser:s3cretpw@relay.example:25"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(folder)
    assert "email.relay_url" in str(caught.value) and "s3cretpw" not in str(caught.value)
    assert "mailuser" not in str(caught.value)


def test_unresolvable_hosts_are_named(tmp_path):
    from triage.config import resolve_hosts

    folder = _copy(tmp_path)
    _service(folder, '[email]\n', '[email]\nrelay_url = "smtp://no-such-host.invalid:25"\n')
    config = load_config(folder)
    with pytest.raises(ConfigError, match=r"triage\.toml: key email\.relay_url: host 'no-such-host\.invalid'"):
        resolve_hosts(config)
    _service(folder, 'relay_url = "smtp://no-such-host.invalid:25"', 'relay_url = "smtp://127.0.0.1:2525"')
    resolve_hosts(load_config(folder))


def test_warnings_for_settings_not_fit_for_production(tmp_path):
    from triage.config import config_warnings

    config = load_config(REPO / "config")
    said = config_warnings(config, environ={"SLACK_BOT_TOKEN": "xoxb-1"})
    assert any("TRIAGE_SIGNING_KEY is not set" in w for w in said)
    assert any("borealis" in w and "demo widget secret" in w for w in said)
    assert any("SLACK_BOT_TOKEN is set but SLACK_SIGNING_SECRET is not" in w for w in said)
    quiet = config_warnings(config, environ={"TRIAGE_SIGNING_KEY": "k", "BOREALIS_WIDGET_SECRET": "x"})
    assert not [w for w in quiet if "TRIAGE_SIGNING_KEY" in w or "Slack" in w]


def test_a_short_widget_secret_is_warned_about(config):
    from triage.config import config_warnings

    said = config_warnings(config, environ={"TRIAGE_SIGNING_KEY": "k"})
    assert any("'acme'" in w and "shorter than 32 bytes" in w for w in said)


def test_workers_and_queue_limit_are_validated(tmp_path):
    from tests.servicekit import write_config

    assert load_config(write_config(tmp_path / "ok", workers=0)).workers >= 1  # 0: one per core
    assert load_config(write_config(tmp_path / "two", workers=2, queue_limit=50)).queue_limit == 50
    with pytest.raises(ConfigError, match=r"triage\.toml.*service\.workers"):
        load_config(write_config(tmp_path / "neg", workers=-1))
    with pytest.raises(ConfigError, match=r"triage\.toml.*service\.queue_limit"):
        load_config(write_config(tmp_path / "zero", queue_limit=0))
