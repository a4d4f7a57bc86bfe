"""Settings: TOML plus CALLCENTER_* overrides; a wrong key or value names itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.config import ConfigError, load_settings

REPO = Path(__file__).resolve().parent.parent


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_and_file_and_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, '[http]\nport = 9000\n[site]\ntime_zone = "Asia/Shanghai"\n')
    settings = load_settings(path, env={})
    assert settings.http.port == 9000 and settings.http.host == "127.0.0.1"
    assert settings.site.time_zone == "Asia/Shanghai"
    env = {
        "CALLCENTER_HTTP_PORT": "9100",
        "CALLCENTER_HTTP_HOST": "0.0.0.0",
        "CALLCENTER_DATABASE_URL": "postgresql+asyncpg://cc@db/cc",
        "CALLCENTER_REDIS_URL": "redis://127.0.0.1:6379/2",
        "CALLCENTER_SIP_HOST": "10.0.0.5",
        "CALLCENTER_SIP_PORT": "5080",
        "CALLCENTER_SITE_TIME_ZONE": "Europe/Berlin",
        "CALLCENTER_AUTH_SECURE_COOKIES": "true",
    }
    settings = load_settings(path, env=env)
    assert settings.http.port == 9100 and settings.http.host == "0.0.0.0"
    assert settings.database.url.startswith("postgresql+asyncpg://")
    assert settings.redis.url == "redis://127.0.0.1:6379/2"
    assert (settings.sip.host, settings.sip.port) == ("10.0.0.5", 5080)
    assert settings.site.time_zone == "Europe/Berlin"
    assert settings.auth.secure_cookies is True


@pytest.mark.parametrize(
    ("text", "env", "key", "words"),
    [
        ("[http]\nprot = 1\n", {}, "http.prot", "unknown setting"),
        ("[htp]\nport = 1\n", {}, "htp", "unknown setting"),
        ('[http]\nport = "80"\n', {}, "http.port", "integer"),
        ("[http]\nport = 70000\n", {}, "http.port", "at most 65535"),
        ("[auth]\nsecure_cookies = 1\n", {}, "auth.secure_cookies", "true or false"),
        ('[site]\ntime_zone = "Mars/Olympus"\n', {}, "site.time_zone", "IANA"),
        ('[database]\nurl = "mysql://x"\n', {}, "database.url", "sqlite"),
        ('mode = "staging"\n', {}, "mode", "one of"),
        ("", {"CALLCENTER_HTTP_PORT": "eighty"}, "http.port", "integer"),
        ("", {"CALLCENTER_HTTP_PROT": "80"}, "CALLCENTER_HTTP_PROT", "unknown"),
        ("[http\n", {}, "config", "TOML"),
    ],
)
def test_wrong_settings_are_named(
    tmp_path: Path, text: str, env: dict[str, str], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), env=env)
    assert info.value.key == key
    assert words in str(info.value)


def test_shipped_config_files_load() -> None:
    demo = load_settings(REPO / "config" / "demo.toml", env={})
    assert demo.mode == "demo" and demo.seed["users"]
    example = load_settings(REPO / "config" / "callcenter.example.toml", env={})
    assert example.mode == "production"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml", env={})


def test_routing_settings_reach_the_router(tmp_path: Path) -> None:
    from callcenter.cti.center import router_settings

    path = _write(
        tmp_path,
        '[routing]\ntier_bonus_key = 600\nmissed_offer_presence = "available"\n'
        "voice_is_exclusive = false\n",
    )
    settings = router_settings(load_settings(path, env={}).routing)
    assert settings.priority.tier_bonus == {"key": 600.0, "normal": 30.0, "small": 0.0}
    assert settings.missed_offer_presence == "available"
    assert settings.voice_is_exclusive is False
    with pytest.raises(ConfigError, match=r"routing\.missed_offer_presence"):
        load_settings(_write(tmp_path, '[routing]\nmissed_offer_presence = "gone"\n'), env={})


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ('[outbound]\ntransport = "tls"\n', "outbound.transport", "one of"),
        ('[outbound]\ncodec = "G729"\n', "outbound.codec", "one of"),
        ('[outbound]\nhost = "a b"\n', "outbound.host", "address"),
        ('[outbound]\nusername = "u"\n', "outbound.password", "both"),
        ('[outbound]\ncaller_id = "<sip:x>"\n', "outbound.caller_id", "number"),
        ("[outbound]\ndial_rules = [1]\n", "outbound.dial_rules[0]", "table"),
        ('[outbound]\ndial_rules = [{pattern = "("}]\n', "outbound.dial_rules[0]", "pattern"),
        (
            '[outbound]\ndial_rules = [{pattern = "(", replace = ""}]\n',
            "outbound.dial_rules[0]",
            "regular expression",
        ),
        (
            '[outbound]\ndial_rules = [{pattern = "1", replace = "\\\\2"}]\n',
            "outbound.dial_rules[0]",
            "regular expression",
        ),
        ('[outbound.allow]\nguest = [".*"]\n', "outbound.allow.guest", "one of"),
        ('[outbound.allow]\nagent = ["["]\n', "outbound.allow.agent", "regular expression"),
        ('[outbound.allow]\nagent = ["1"]\n', "outbound.host", "trunk"),
    ],
)
def test_wrong_outbound_settings_are_named(tmp_path: Path, text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), env={})
    assert info.value.key == key
    assert words in str(info.value)


def test_outbound_settings_from_file_and_environment(tmp_path: Path) -> None:
    text = (
        '[outbound]\nhost = "sip.trunk.example"\nusername = "cc"\n'
        'dial_rules = [{pattern = "0(\\\\d+)", replace = "+86\\\\1"}]\n'
        '[outbound.allow]\nagent = ["\\\\+861\\\\d{10}"]\n'
    )
    settings = load_settings(
        _write(tmp_path, text), env={"CALLCENTER_OUTBOUND_PASSWORD": "from-env"}
    )
    assert settings.outbound.password == "from-env"
    assert settings.outbound.dial_rules == [{"pattern": r"0(\d+)", "replace": r"+86\1"}]
    assert settings.outbound.allow == {"agent": [r"\+861\d{10}"]}
