"""line(): exact formatting, refusals, and a hypothesis round-trip through a real influxd 1.6."""

from __future__ import annotations

import itertools
import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from drivers.influx import line
from simulators.servers import InfluxServer


@pytest.mark.parametrize(
    ("measurement", "tags", "fields", "expected"),
    [
        ("m", {}, {"v": 1.5}, "m v=1.5 7"),
        ("m", {"b": "2", "a": "1"}, {"v": 1.0}, "m,a=1,b=2 v=1.0 7"),  # tags sorted
        ("m", {"a": ""}, {"v": 1.0}, "m v=1.0 7"),  # empty tag value = no tag
        ("m", {}, {"i": 5, "t": True, "f": False}, "m i=5i,t=true,f=false 7"),
        ("m", {}, {"v": None, "w": 2.0}, "m w=2.0 7"),  # None skipped
        ("m", {}, {"v": 1e-05}, "m v=1e-05 7"),
        ("my m,x", {"k ,=": "v ,="}, {"f ,=": 1.0}, "my\\ m\\,x,k\\ \\,\\==v\\ \\,\\= f\\ \\,\\==1.0 7"),
        ("m", {}, {"s": 'say "hi" \\o/'}, 'm s="say \\"hi\\" \\\\o/" 7'),
        ("m=1", {}, {"v": 1.0}, "m=1 v=1.0 7"),  # '=' needs no escape in a measurement
    ],
)
def test_line_formats_exactly(measurement: str, tags: dict[str, str], fields: dict[str, object], expected: str) -> None:
    assert line(measurement, tags, fields, 7) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("measurement", "tags", "fields"),
    [
        ("m", {}, {}),
        ("m", {}, {"v": None}),
        ("m", {}, {"v": float("nan")}),
        ("m", {}, {"v": float("inf")}),
        ("m", {}, {"v": 2**63}),
        ("", {}, {"v": 1.0}),
        ("#m", {}, {"v": 1.0}),
        ("m", {"": "x"}, {"v": 1.0}),
        ("m", {"a": "x\ny"}, {"v": 1.0}),
        ("m", {"a": "x\\"}, {"v": 1.0}),
        ("m", {"a": "x\\,y"}, {"v": 1.0}),
        ("m", {}, {"s": "two\nlines"}),
        ("m", {"time": "x"}, {"v": 1.0}),
        ("m", {}, {"time": 1.0}),
    ],
)
def test_line_refuses_what_it_cannot_express(measurement: str, tags: dict[str, str], fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        line(measurement, tags, fields, 7)  # type: ignore[arg-type]


# -- property: any representable string round-trips through influxd 1.6 -------------------------

DB = "prop"
_text = st.text(
    alphabet=st.one_of(
        st.sampled_from([*list(" ,=\"\\=#'"), "é", "µ", "°", "中", "🙂"]),
        st.characters(blacklist_categories=("Cs", "Cc")),
    ),
    min_size=1,
    max_size=10,
)


@pytest.fixture(scope="module")
def prop_influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    server = InfluxServer(Path(tmp_path_factory.mktemp("prop-influxd")))
    server.start()
    server.create_database(DB)
    yield server
    server.close()


_ts = itertools.count(1_600_000_000_000_000_000)


@pytest.mark.servers
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    meas=_text,
    tag_key=_text,
    tag_value=_text,
    field_key=_text,
    field_value=st.text(max_size=20).filter(lambda s: "\n" not in s and "\r" not in s),
)
def test_line_round_trips_through_influxd(  # noqa: PLR0917 - hypothesis passes arguments by name
    prop_influx: InfluxServer, meas: str, tag_key: str, tag_value: str, field_key: str, field_value: str
) -> None:
    tk, fk = "t" + tag_key, "f" + field_key  # distinct prefixes: a tag and a field never share a name
    try:
        text = line(meas, {tk: tag_value}, {fk: field_value, "n": 1.5}, ts := next(_ts))
    except ValueError:
        # only strings line protocol cannot carry are refused
        assert "\\" in meas + tk + tag_value + fk or meas.startswith("#")
        assume(False)
        return
    req = urllib.request.Request(f"{prop_influx.url}/write?db={DB}&precision=ns", data=text.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204
    q = urllib.parse.urlencode({"q": f"SELECT * FROM /.*/ WHERE time = {ts}", "db": DB, "epoch": "ns"})
    with urllib.request.urlopen(f"{prop_influx.url}/query?{q}", timeout=10) as resp:
        (series,) = json.loads(resp.read())["results"][0]["series"]
    row = dict(zip(series["columns"], series["values"][0], strict=True))
    assert series["name"] == meas
    assert (row["time"], row[tk], row[fk], row["n"]) == (ts, tag_value, field_value, 1.5)
