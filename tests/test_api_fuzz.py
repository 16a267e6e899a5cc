"""schemathesis against the API's own OpenAPI description, on real PostgreSQL with both tenants' data: every
operation gets generated requests (valid ones, and ones the description rules out) with tenant A's key, and
every answer must match its description (status documented, body and headers as described, no 5xx, a
request the description rules out refused, one it allows accepted, none that ignores the key).

The examples per operation are bounded (FUZZ_EXAMPLES) so that the run stays within seconds in CI, and drawn
the same way every run there (a merge is never failed by a draw no one can replay); set
WAHOOKS_FUZZ_EXAMPLES for a longer, freshly random run by hand. Afterwards, tenant B's rows must be exactly
as before.
"""

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, HookContext

from api.analytics import RANGE_RULES
from api.app import create_app
from api.resource import PREFIX
from models.db import Database
from tests.api_fixtures import Api, api_for, tenant_rows

pytestmark = pytest.mark.postgres
BY_HAND = os.environ.get("WAHOOKS_FUZZ_EXAMPLES")
FUZZ_EXAMPLES = int(BY_HAND or "15")


@pytest.fixture(scope="module")
def fuzzed(postgres_db: Database, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with api_for(postgres_db, redis_url, tmp_path_factory.mktemp("fuzz")) as built:
        yield built


@pytest.fixture(scope="module")
def tenant_b_before(fuzzed: Api) -> list[tuple[object, ...]]:
    """Tenant B's rows before the first generated request."""
    return tenant_rows(fuzzed.db, "B")


# The description, read at collection from an app whose database is never reached (describing needs none);
# each case is then sent to the app of the `fuzzed` fixture, on PostgreSQL. (Not from_fixture(): its lazy
# loader reads pytest's Node._nodeid, which pytest 9.2 no longer has; checked with schemathesis 4.32.5.)
schema = schemathesis.openapi.from_wsgi(f"{PREFIX}/openapi.json", create_app(Database("sqlite://")))


@schema.hook
def map_case(_context: HookContext, case: Case) -> Case:
    """A cursor is opaque: only one the API handed out is valid, and the fuzzer cannot make one, so its valid
    requests carry none (paging with real cursors is tests/test_api.py's); its invalid ones keep theirs."""
    if case.meta is not None and case.meta.generation.mode.is_positive and case.query:
        case.query.pop("cursor", None)
    return case


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=BY_HAND is None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_operation_answers_as_its_description_says(
    case: Case, fuzzed: Api, tenant_b_before: list[tuple[object, ...]]
) -> None:
    # Analytics has two rules on its range no schema can state (since after until, more than 366 days):
    # a valid-looking range may get 422 there, and only for those rules.
    ranged = case.operation.path.startswith(f"{PREFIX}/analytics/")
    response = case.call_and_validate(
        app=fuzzed.app,
        headers={"Authorization": f"Bearer {fuzzed.keys['A']}"},
        excluded_checks=[schemathesis.checks.positive_data_acceptance] if ranged else None,
    )
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if ranged and positive and response.status_code == 422:
        assert response.json()["detail"] in [{"query": {"since": [rule]}} for rule in RANGE_RULES], (
            response.text
        )


def test_fuzzing_with_one_tenants_key_left_the_other_tenant_untouched(
    fuzzed: Api, tenant_b_before: list[tuple[object, ...]]
) -> None:
    assert tenant_rows(fuzzed.db, "B") == tenant_b_before
