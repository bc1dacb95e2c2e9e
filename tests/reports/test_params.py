"""Parameter validation: typed, bounded, and every error names its field."""
from datetime import date

import pytest

from app.reports import get_report
from app.reports.params import Param, ParamsInvalid, validate_params

SCHEMA = (
    Param("n", int, default=3, minimum=1, maximum=10),
    Param("ratio", float, default=0.5, minimum=0, maximum=1),
    Param("mode", str, default="a", choices=("a", "b")),
    Param("since", date, default=None),
    Param("name", str),
)


def test_defaults_and_coercion():
    clean = validate_params(SCHEMA, {"name": "x", "n": "7", "since": "2026-01-31"})
    assert clean == {"n": 7, "ratio": 0.5, "mode": "a", "since": date(2026, 1, 31), "name": "x"}


@pytest.mark.parametrize(
    "raw, field, fragment",
    [
        ({"name": "x", "n": 0}, "params.n", "at least 1"),
        ({"name": "x", "n": 2.5}, "params.n", "integer"),
        ({"name": "x", "n": True}, "params.n", "integer"),
        ({"name": "x", "ratio": "nan"}, "params.ratio", "finite"),
        ({"name": "x", "mode": "c"}, "params.mode", "one of a, b"),
        ({"name": "x", "since": "31/01/2026"}, "params.since", "YYYY-MM-DD"),
        ({}, "params.name", "required"),
        ({"name": "x", "bogus": 1}, "params.bogus", "not a parameter"),
        ({"name": "x" * 500}, "params.name", "at most 200"),
    ],
)
def test_errors_name_the_field(raw, field, fragment):
    with pytest.raises(ParamsInvalid) as info:
        validate_params(SCHEMA, raw)
    fields = {e["field"]: e["message"] for e in info.value.errors}
    assert field in fields and fragment in fields[field]


def test_params_must_be_an_object():
    with pytest.raises(ParamsInvalid, match="JSON object"):
        validate_params(SCHEMA, [1, 2])


def test_builtin_reports_describe_their_schema():
    demo = get_report("demo").describe()
    names = [p["name"] for p in demo["params"]]
    assert names == ["duration_seconds", "steps", "fail_times"]
    assert demo["params"][0]["default"] == 10.0 and demo["params"][0]["maximum"] == 600
