"""The one table of status rules names real columns and orders statuses the way the store relies on."""

import pytest

from models import COUNTERS, WhatsAppAnalytics, WhatsAppMessage
from models.statuses import STATUS_RULES, StatusRule


@pytest.mark.parametrize("rule", STATUS_RULES, ids=lambda r: r.status)
def test_each_status_keeps_its_time_and_has_a_counter(rule: StatusRule) -> None:
    assert rule.time_column in WhatsAppMessage.__table__.c
    assert rule.counter in WhatsAppAnalytics.__table__.c
    assert rule.counter in COUNTERS


def test_ranks_are_distinct_and_failed_is_terminal() -> None:
    ranks = [rule.rank for rule in STATUS_RULES]
    assert len(set(ranks)) == len(ranks)
    assert max(STATUS_RULES, key=lambda r: r.rank).status == "failed"
