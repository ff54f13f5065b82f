from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from daemon.yamlsource import ConfigError, load_model, load_yaml


class Inner(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    above: float
    below: float = 0


class Outer(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: str
    items: list[Inner]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "f.yaml"
    p.write_text(text)
    return p


def test_misspelt_key_reports_line_column_and_suggestion(tmp_path: Path) -> None:
    p = write(tmp_path, "name: x\nitems:\n  - above: 1\n  - abvoe: 2\n")
    with pytest.raises(ConfigError) as info:
        load_model(Outer, p)
    text = str(info.value)
    assert f"{p}:4:5: unknown key 'abvoe' (did you mean 'above'?)" in text
    assert f"{p}:4:5: missing required key 'above'" in text or ":4:" in text


def test_bad_value_points_at_the_value(tmp_path: Path) -> None:
    p = write(tmp_path, "name: x\nitems:\n  - above: lots\n")
    with pytest.raises(ConfigError) as info:
        load_model(Outer, p)
    err = info.value.errors[0]
    assert (err.line, err.column) == (3, 12)
    assert "lots" in err.message


def test_syntax_error_has_position(tmp_path: Path) -> None:
    p = write(tmp_path, "name: x\nitems: [\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(p)
    assert info.value.errors[0].line >= 2
    assert "YAML syntax" in str(info.value)


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    p = write(tmp_path, "name: x\nname: y\nitems: []\n")
    with pytest.raises(ConfigError):
        load_yaml(p)


class Point(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    writable: bool = False


class Profile(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    points: dict[str, Point]


def test_did_you_mean_inside_a_dict_of_models(tmp_path: Path) -> None:
    p = write(tmp_path, "points:\n  fan:\n    writeable: true\n")
    with pytest.raises(ConfigError) as info:
        load_model(Profile, p)
    assert f"{p}:3:5: unknown key 'writeable' (did you mean 'writable'?)" in str(info.value)
