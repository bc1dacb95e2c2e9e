"""Declared report parameters and their validation (pure: no Flask, Celery or Redis)."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

@dataclass(frozen=True)
class Param:
    """One parameter of a report: its type, default and bounds."""

    name: str
    kind: type
    default: Any = REQUIRED
    label: str = ""
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    max_length: int = 200

    @property
    def required(self) -> bool:
        """True when the caller must supply a value."""
        return self.default is REQUIRED

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description, used by the API and to build forms."""
        kind = param_type(self.kind)
        out: dict[str, Any] = {
            "name": self.name,
            "type": kind.name,
            "label": self.label or self.name.replace("_", " ").capitalize(),
            "help": self.help,
            "required": self.required,
            "input": kind.html_input,  # how a form asks for it
        }
        if kind.step:
            out["step"] = kind.step
        if not self.required:
            out["default"] = self.default.isoformat() if isinstance(self.default, date) else self.default
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.choices:
            out["choices"] = list(self.choices)
        if self.kind is str:
            out["max_length"] = self.max_length
        return out

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of an accepted value (the OpenAPI document's, from the same declaration)."""
        schema = dict(param_type(self.kind).schema)
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.choices:
            schema["enum"] = list(self.choices)
        elif self.kind is str:
            schema["maxLength"] = self.max_length
        return schema


@dataclass
class ParamsInvalid(Exception):
    """Validation failed; ``errors`` lists one message per offending field."""

    errors: list[dict[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{e['field']}: {e['message']}" for e in self.errors)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "on", "off", "yes", "no"}:
        return value.lower() in {"true", "1", "on", "yes"}
    raise ValueError("must be true or false")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):  # a bool is an int to Python, not to a form or a JSON client
        raise ValueError("must be an integer")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError("must be an integer") from None
    if not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError("must be a number") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("must be a finite number")
    return float(value)


def _to_date(value: Any) -> date:
    if not isinstance(value, str):
        raise ValueError("must be a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("must be a date written YYYY-MM-DD") from None


def _to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


@dataclass(frozen=True)
class ParamType:
    """Everything Longrun knows of one parameter type: validation, the API's description and schema, the form."""

    name: str  # in GET /reports
    convert: Callable[[Any], Any]  # raises ValueError with the reason a user reads
    schema: dict[str, Any]  # JSON Schema (OpenAPI), before the parameter's own bounds
    html_input: str  # the form's <input type>, or "checkbox"
    step: str | None = None  # a number input's step


# The one table of parameter types: a new type is one row here.
PARAM_TYPES: dict[type, ParamType] = {
    bool: ParamType("boolean", _to_bool, {"type": "boolean"}, "checkbox"),
    int: ParamType("integer", _to_int, {"type": "integer"}, "number", step="1"),
    float: ParamType("number", _to_float, {"type": "number"}, "number", step="any"),
    date: ParamType("date (YYYY-MM-DD)", _to_date, {"type": "string", "format": "date"}, "date"),
    str: ParamType("string", _to_str, {"type": "string"}, "text"),
}


def param_type(kind: type) -> ParamType:
    """The row of ``kind``; a type without one is a report definition bug."""
    found = PARAM_TYPES.get(kind)
    if found is None:
        raise TypeError(f"unsupported parameter type {kind!r}: add it to PARAM_TYPES")
    return found


def _coerce(param: Param, value: Any) -> Any:
    """Convert ``value`` to the parameter's type or raise ``ValueError`` with a readable reason."""
    return param_type(param.kind).convert(value)


def _check_bounds(param: Param, value: Any) -> None:
    if param.choices and value not in param.choices:
        raise ValueError(f"must be one of {', '.join(param.choices)}")
    if isinstance(value, str) and len(value) > param.max_length:
        raise ValueError(f"must be at most {param.max_length} characters")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if param.minimum is not None and value < param.minimum:
            raise ValueError(f"must be at least {param.minimum:g}")
        if param.maximum is not None and value > param.maximum:
            raise ValueError(f"must be at most {param.maximum:g}")


def validate_params(schema: tuple[Param, ...], raw: Any) -> dict[str, Any]:
    """Return clean, typed parameters (defaults filled in) or raise ``ParamsInvalid``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsInvalid([{"field": "params", "message": "must be a JSON object"}])
    errors: list[dict[str, str]] = []
    known = {p.name for p in schema}
    for name in raw:
        if name not in known:
            allowed = ", ".join(sorted(known)) or "none"
            errors.append({"field": f"params.{name}"[:100], "message": f"is not a parameter of this report (allowed: {allowed})"})
    clean: dict[str, Any] = {}
    for param in schema:
        value = raw.get(param.name)
        if value is None or (isinstance(value, str) and value.strip() == "" and param.kind is not str):
            if param.required:
                errors.append({"field": f"params.{param.name}", "message": "is required"})
            else:
                clean[param.name] = param.default
            continue
        try:
            coerced = _coerce(param, value)
            _check_bounds(param, coerced)
        except ValueError as exc:
            errors.append({"field": f"params.{param.name}", "message": str(exc)})
            continue
        clean[param.name] = coerced
    if errors:
        raise ParamsInvalid(errors)
    return clean


def to_json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Make validated parameters JSON-storable (dates as ISO strings)."""
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in params.items()}
