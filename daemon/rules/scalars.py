"""Numbers and yes/no values in rule files, taken as written: never converted from text or from each other.

pydantic would otherwise read ``enabled: "yes"`` as true, ``safe_value: true`` as 1 and ``above: "24.5"``
as 24.5, where the JSON Schema that editors check (config/schema/rules.schema.json) and the staff guide
say a number or true/false is expected. Refusing them keeps ``lobbyd check`` and the schema in agreement
and says plainly what was seen. The errors carry pydantic's own types (``float_type``, ``int_type``,
``bool_type``), so daemon/wording.py words them as it words every other such error.
"""

from __future__ import annotations

from typing import Annotated, Any

from annotated_types import Gt
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

__all__ = ["Flag", "Integer", "Number", "PositiveNumber"]


def _seen(value: Any) -> str:
    if isinstance(value, str):
        return f"the text '{value[:60]}'"
    if isinstance(value, bool):
        return f"the yes/no value {str(value).lower()}"
    if value is None:
        return "nothing"
    return f"{value!r}"


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "float_type", "expected a number, e.g. 25 or 2.5, found {seen}", {"seen": _seen(value)}
        )
    return value


def _integer(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("int_type", "expected a whole number, e.g. 10, found {seen}", {"seen": _seen(value)})
    return value


def _flag(value: Any) -> Any:
    if not isinstance(value, bool):
        raise PydanticCustomError("bool_type", "expected true or false, found {seen}", {"seen": _seen(value)})
    return value


Number = Annotated[float, BeforeValidator(_number)]
# A bound goes before the validator, or pydantic writes it into the JSON Schema as an unknown keyword.
PositiveNumber = Annotated[float, Gt(0), BeforeValidator(_number)]
Integer = Annotated[int, BeforeValidator(_integer)]
Flag = Annotated[bool, BeforeValidator(_flag)]
