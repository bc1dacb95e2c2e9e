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


def test_one_table_gives_each_type_its_validation_schema_and_form_input():
    from app.reports.params import PARAM_TYPES, param_type

    declared = {
        bool: Param("flag", bool, default=False),
        int: Param("count", int, default=1, minimum=1, maximum=10),
        float: Param("ratio", float, default=0.5, maximum=1),
        date: Param("day", date, default=None),
        str: Param("name", str, default="x", max_length=20),
    }
    assert set(declared) == set(PARAM_TYPES)  # every type in the table is exercised here
    assert declared[int].json_schema() == {"type": "integer", "minimum": 1, "maximum": 10}
    assert declared[float].json_schema() == {"type": "number", "maximum": 1}
    assert declared[date].json_schema() == {"type": "string", "format": "date"}
    assert declared[str].json_schema() == {"type": "string", "maxLength": 20}
    assert Param("g", str, default="a", choices=("a", "b")).json_schema() == {"type": "string", "enum": ["a", "b"]}
    inputs = {kind: (p.describe()["input"], p.describe().get("step")) for kind, p in declared.items()}
    assert inputs == {bool: ("checkbox", None), int: ("number", "1"), float: ("number", "any"), date: ("date", None),
                      str: ("text", None)}
    with pytest.raises(TypeError, match="PARAM_TYPES"):
        param_type(complex)


def test_the_openapi_document_takes_each_reports_parameters_from_their_declarations(app):
    from app.api.openapi import build_document
    from app.reports import all_reports

    with app.test_request_context():
        variants = build_document()["components"]["schemas"]["ScheduleCreate"]
    text = repr(variants)
    for report in all_reports():
        for param in report.params:
            assert repr(param.json_schema())[1:-1] in text, (report.name, param.name)
