"""Zero 5xx under fuzzing: schemathesis generates requests for every operation of the OpenAPI
document that a real ``pushrelay serve`` publishes, on SQLite and PostgreSQL, with a fixed seed
(derandomized), a few hundred cases in all. The longer run for the figures is in docs/http-api.md."""

from __future__ import annotations

from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode

from .conftest import Stack

EXAMPLES_PER_OPERATION = 30


def _strategy(operation: Any) -> Any:
    """Requests that fit the schema (half of them for the configured app, so that they get past
    the app check into the database) and requests that do not."""

    def our_app(case: Any) -> Any:
        if isinstance(case.body, dict) and isinstance(case.body.get("app"), str):
            case.body["app"] = "myapp"
        if isinstance(case.query, dict) and isinstance(case.query.get("app"), str):
            case.query["app"] = "myapp"
        return case

    positive = operation.as_strategy(GenerationMode.POSITIVE)
    return positive | positive.map(our_app) | operation.as_strategy(GenerationMode.NEGATIVE)


def test_no_5xx_for_generated_requests(stack: Stack) -> None:
    stack.service.start()
    document = httpx.get(f"{stack.service.url}/openapi.json", timeout=30).json()
    operations = [(p, m, op) for p, item in document["paths"].items() for m, op in item.items()]
    for path, method, op in operations:  # every API operation documents its refusals
        if path.startswith("/v1/"):
            assert {"400", "404", "409", "413", "422", "429"} <= set(op["responses"]), (method, path)
            assert op["responses"]["422"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"
            }
    schema = schemathesis.openapi.from_url(f"{stack.service.url}/openapi.json")
    schema.config.base_url = stack.service.url  # type: ignore[attr-defined]
    auth = {"Authorization": f"Bearer {stack.admin}"}
    failures: list[str] = []
    cases = 0
    codes: list[int] = []

    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,  # the fixed seed: the same cases every run
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=_strategy(operation))
        def check(case: Any) -> None:
            nonlocal cases
            cases += 1
            response = case.call(headers=auth, timeout=30)
            codes.append(response.status_code)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}"
                )

        check()

    assert cases >= 100, cases
    assert {200, 404, 422} <= set(codes), sorted(set(codes))  # past the validation, into the database
    assert failures == [], "\n".join(failures[:20])
    # and the service is still serving
    assert httpx.get(f"{stack.service.url}/healthz", timeout=10).status_code == 200
