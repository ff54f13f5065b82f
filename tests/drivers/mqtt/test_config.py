"""The MQTT driver's config models as they come from YAML (positions via daemon.yamlsource)."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from daemon.yamlsource import ConfigError, load_yaml, validate
from drivers.mqtt import JsonDecoder, MqttConfig, SensorConfig, TasmotaDecoder


class Section(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    mqtt: MqttConfig
    sensors: list[SensorConfig]


GOOD = """\
mqtt:
  host: broker.branch.local
  port: 8883
  username: lobbyd
  password_file: /etc/lobbyd/mqtt.pw
  tls: {ca_file: /etc/lobbyd/ca.crt}
sensors:
  - {id: hall-pm, topic: tele/hall-air/SENSOR, zone: hall, quantity: pm25,
     decoder: {type: tasmota, sensor: SDS0X1, key: PM2.5}}
  - id: hall-t
    topic: sensors/hall/climate
    zone: hall
    quantity: temperature
    unit: °F
    decoder: {type: json, path: "data.readings[0].t"}
    plausible: [5, 40]
    stale_after_s: 120
    qos: 1
"""


def test_a_good_section_loads() -> None:
    cfg = validate(Section, load_yaml("lobbyd.yaml", text=GOOD))
    assert cfg.mqtt.tls is not None and cfg.mqtt.tls.verify_hostname is True
    assert (cfg.mqtt.keepalive_s, cfg.mqtt.reconnect_initial_s, cfg.mqtt.reconnect_max_s) == (30, 1.0, 30.0)
    pm, t = cfg.sensors
    assert isinstance(pm.decoder, TasmotaDecoder) and pm.stale_after_s == 300.0 and pm.qos == 1
    assert isinstance(t.decoder, JsonDecoder) and t.decoder.parts == ("data", "readings", 0, "t")
    assert t.plausible_range == (5.0, 40.0)


def test_errors_carry_file_line_column() -> None:
    bad = GOOD.replace('path: "data.readings[0].t"', 'path: "data..t"').replace("qos: 1", "qso: 1")
    with pytest.raises(ConfigError) as info:
        validate(Section, load_yaml("lobbyd.yaml", text=bad))
    text = str(info.value)
    assert text.splitlines() == [
        "lobbyd.yaml:15:33: bad JSON path 'data..t': empty key at character 6 (sensors[1].decoder.json.path)",
        "lobbyd.yaml:18:5: unknown key 'qso' (did you mean 'qos'?) (sensors[1].qso)",
    ]


def test_password_comes_from_env_or_file_never_inline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(pydantic.ValidationError, match="Extra inputs"):
        MqttConfig.model_validate({"host": "h", "username": "u", "password": "x"})
    with pytest.raises(pydantic.ValidationError, match="not both"):
        MqttConfig(host="h", username="u", password_env="A", password_file=tmp_path / "p")
    with pytest.raises(pydantic.ValidationError, match="needs a username"):
        MqttConfig(host="h", password_env="A")
    with pytest.raises(pydantic.ValidationError, match="must not exceed"):
        MqttConfig(host="h", reconnect_initial_s=10, reconnect_max_s=5)
    monkeypatch.setenv("LOBBYD_PW_T", "from-env")
    secret = MqttConfig(host="h", username="u", password_env="LOBBYD_PW_T").password()
    assert secret is not None and secret.get_secret_value() == "from-env" and "from-env" not in repr(secret)
    (tmp_path / "p").write_text("from-file\n")
    secret = MqttConfig(host="h", username="u", password_file=tmp_path / "p").password()
    assert secret is not None and secret.get_secret_value() == "from-file"
    assert MqttConfig(host="h").password() is None


@pytest.mark.parametrize("bad", [0, -1, "many"])
def test_the_incoming_queue_has_room_for_at_least_one_message(bad: object) -> None:
    """0 would mean "unbounded" to aiomqtt: refused, like any non-number."""
    with pytest.raises(pydantic.ValidationError):
        MqttConfig.model_validate({"host": "h", "incoming_queue": bad})
    assert MqttConfig(host="h").incoming_queue == 100_000
