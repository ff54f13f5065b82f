"""Register codec and encoders: exact tables, round-trip properties, clamping."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.modbus import DataType, Order, PointSpec
from drivers.modbus.codec import (
    DaliArcEncoder,
    EnumEncoder,
    KelvinDiv10Encoder,
    MirekEncoder,
    PercentEncoder,
    ScaleEncoder,
    decode_registers,
    encode_registers,
)

B, L = Order.BIG, Order.LITTLE


@pytest.mark.parametrize(
    ("raw", "dt", "words", "bytes_", "regs"),
    [
        (0x1234, DataType.UINT16, B, B, [0x1234]),
        (0x1234, DataType.UINT16, B, L, [0x3412]),
        (-2, DataType.INT16, B, B, [0xFFFE]),
        (0x12345678, DataType.UINT32, B, B, [0x1234, 0x5678]),
        (0x12345678, DataType.UINT32, L, B, [0x5678, 0x1234]),
        (0x12345678, DataType.UINT32, L, L, [0x7856, 0x3412]),
        (-1, DataType.INT32, B, B, [0xFFFF, 0xFFFF]),
        (-65536, DataType.INT32, B, B, [0xFFFF, 0x0000]),
        (1.0, DataType.FLOAT32, B, B, [0x3F80, 0x0000]),
        (1.0, DataType.FLOAT32, L, B, [0x0000, 0x3F80]),
        (1, DataType.BOOL, B, B, [1]),
    ],
)
def test_register_layout(raw: float, dt: DataType, words: Order, bytes_: Order, regs: list[int]) -> None:
    assert encode_registers(raw, dt, word_order=words, byte_order=bytes_) == regs
    assert decode_registers(regs, dt, word_order=words, byte_order=bytes_) == raw


@pytest.mark.parametrize(("raw", "dt"), [(70000, DataType.UINT16), (-1, DataType.UINT16), (40000, DataType.INT16)])
def test_out_of_range_raw_is_refused(raw: int, dt: DataType) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        encode_registers(raw, dt)


_INT_TYPES = {
    DataType.INT16: (-0x8000, 0x7FFF),
    DataType.UINT16: (0, 0xFFFF),
    DataType.INT32: (-0x80000000, 0x7FFFFFFF),
    DataType.UINT32: (0, 0xFFFFFFFF),
}


@given(st.sampled_from(list(_INT_TYPES)), st.data(), st.sampled_from([B, L]), st.sampled_from([B, L]))
def test_integer_round_trip(dt: DataType, data: st.DataObject, words: Order, bytes_: Order) -> None:
    lo, hi = _INT_TYPES[dt]
    raw = data.draw(st.integers(lo, hi))
    regs = encode_registers(raw, dt, word_order=words, byte_order=bytes_)
    assert all(0 <= r <= 0xFFFF for r in regs)
    assert decode_registers(regs, dt, word_order=words, byte_order=bytes_) == raw


@given(st.floats(width=32, allow_nan=False, allow_infinity=False), st.sampled_from([B, L]), st.sampled_from([B, L]))
def test_float32_round_trip(raw: float, words: Order, bytes_: Order) -> None:
    regs = encode_registers(raw, DataType.FLOAT32, word_order=words, byte_order=bytes_)
    assert decode_registers(regs, DataType.FLOAT32, word_order=words, byte_order=bytes_) == raw


@pytest.mark.parametrize(
    ("encoder", "value", "raw"),
    [
        (ScaleEncoder(scale=0.1), 21.5, 215),
        (ScaleEncoder(scale=0.5, offset=-40), 0.0, 80),
        (PercentEncoder(), 37.0, 37),
        (PercentEncoder(raw_max=254), 100.0, 254),
        (DaliArcEncoder(), 100.0, 254),
        (DaliArcEncoder(), 0.1, 1),
        (DaliArcEncoder(), 0.0, 0),
        (DaliArcEncoder(), 10.0, 170),  # 1 + 253/3 * 2 = 169.67
        (MirekEncoder(), 5000.0, 200),
        (MirekEncoder(), 2500.0, 400),
        (KelvinDiv10Encoder(), 2700.0, 270),
    ],
)
def test_encoders(encoder: ScaleEncoder, value: float, raw: float) -> None:
    assert round(encoder.to_raw(value)) == raw


@given(st.integers(0, 254))
def test_dali_arc_levels_round_trip_exactly(level: int) -> None:
    enc = DaliArcEncoder()
    assert enc.to_raw(enc.from_raw(level)) == level


@given(st.floats(0.1, 100.0))
def test_dali_arc_percent_within_one_step(pct: float) -> None:
    enc = DaliArcEncoder()
    back = enc.from_raw(enc.to_raw(pct))
    assert abs(math.log10(back) - math.log10(pct)) <= 0.5 * 3 / 253 + 1e-9  # half a level on the log scale


@given(st.integers(2000, 6500))
def test_mirek_round_trip_through_registers(kelvin: int) -> None:
    spec = PointSpec(address=0, encoder=MirekEncoder(), writable=True)
    back = spec.from_registers(spec.to_registers(kelvin))
    assert abs(back - kelvin) <= kelvin * kelvin / 1e6  # one mirek step
    assert spec.matches(kelvin, back)


def test_enum_with_separate_read_map() -> None:
    enc = EnumEncoder(write={0: 10, 1: 1, 2: 2, 3: 3}, read={10: 0, 1: 1, 2: 2, 3: 3, 4: 3, 9: 2})
    assert [enc.to_raw(v) for v in (0, 1, 2, 3)] == [10, 1, 2, 3]
    assert [enc.from_raw(r) for r in (10, 4, 9)] == [0, 3, 2]
    with pytest.raises(ValueError, match="not one of"):
        enc.to_raw(5)
    with pytest.raises(ValueError, match="unknown code"):
        enc.from_raw(7)


def test_enum_read_is_write_minus_one() -> None:
    enc = EnumEncoder(write={1: 1, 2: 2, 3: 3}, read={0: 1, 1: 2, 2: 3})
    spec = PointSpec(address=0, encoder=enc, writable=True)
    assert spec.from_registers([1]) == 2  # device reports written − 1


def test_ambiguous_enum_needs_read_map() -> None:
    with pytest.raises(ValueError, match="explicit 'read'"):
        EnumEncoder(write={0: 1, 1: 1})


@pytest.mark.parametrize(
    ("spec", "value", "clamped"),
    [
        (PointSpec(address=0, min=2700, max=5000, writable=True), 6000, 5000),
        (PointSpec(address=0, min=2700, max=5000, writable=True), 1000, 2700),
        (PointSpec(address=0, min=2700, max=5000, writable=True), 3333.3, 3333.3),
        (PointSpec(address=0, allowed=(0, 1, 2, 3), writable=True), 2.4, 2),
        (PointSpec(address=0, allowed=(0, 1, 2, 3), writable=True), 2.5, 2),  # ties go down
        (PointSpec(address=0, allowed=(0, 1, 2, 3), writable=True), 9, 3),
        (PointSpec(address=0, encoder=EnumEncoder(write={0: 10, 2: 2}), writable=True), 1.4, 2),
    ],
)
def test_clamp(spec: PointSpec, value: float, clamped: float) -> None:
    assert spec.clamp(value) == clamped
    spec.check(spec.clamp(value))


@given(st.floats(-1e6, 1e6))
def test_clamp_always_lands_inside(value: float) -> None:
    spec = PointSpec(address=0, min=0, max=3, allowed=(0, 1, 2, 3), writable=True)
    assert spec.clamp(value) in (0, 1, 2, 3)


def test_bit_point_extracts_one_bit() -> None:
    spec = PointSpec(address=900, bit=11)
    assert spec.from_registers([1 << 11 | 1 << 2]) == 1
    assert spec.from_registers([1 << 2]) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"register": "coil", "data_type": "uint16"}, "data_type: bool"),
        ({"register": "input", "writable": True}, "cannot be writable"),
        ({"min": 5, "max": 1}, "greater than max"),
        ({"bit": 3, "writable": True}, "read-only"),
        ({"poll_interval_s": 5, "writable": True}, "only for status"),
    ],
)
def test_point_semantics_are_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PointSpec.model_validate({"address": 0, **kwargs})
