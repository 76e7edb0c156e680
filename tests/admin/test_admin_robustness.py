"""Admin input that used to answer 500: the Run… form's oversized, non-finite and deeply nested arguments,
and list pages given a 100,000-character search or a year no datetime can hold."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from django_tasks_q.conf import queues
from tests.support.admin import Q, client_for, make_user, memory_settings

pytestmark = pytest.mark.django_db

RUN = "/admin/django_tasks_q/registeredtask/run/"
LIMIT = 4096


@pytest.fixture(autouse=True)
def memory(settings: Any) -> None:
    settings.TASKS_Q = memory_settings()
    settings.TASKS_Q[Q]["MAX_MESSAGE_SIZE"] = LIMIT


@pytest.fixture
def root():
    return client_for(make_user("root", superuser=True))


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (f'["{secrets.token_hex(LIMIT)}"]', '{"b": 1}', "over the limit"),  # random: no compression helps
        ("[NaN]", "{}", "NaN is not a JSON value"),
        ("[1]", '{"b": Infinity}', "Infinity is not a JSON value"),
        ("[1]", '{"b": -Infinity}', "Infinity is not a JSON value"),
        ("[" * 100_000 + "]" * 100_000, "{}", "nested too deeply"),
        ("[1]", '{"b": ' + '{"k": ' * 50_000 + "1" + "}" * 50_000 + "}", "nested too deeply"),
    ],
    ids=["too-large", "nan", "infinity", "minus-infinity", "nested-args", "nested-kwargs"],
)
def test_run_form_reports_arguments_no_queue_can_carry(root, args: str, kwargs: str, message: str) -> None:
    data = {"queue": Q, "task": "tests.support.admin.add", "args": args, "kwargs": kwargs}
    response = root.post(RUN + f"?queue={Q}", data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert queues[Q].pending_count() == 0 and not LogEntry.objects.exists()


@pytest.mark.parametrize(
    "page", ["django_tasks_q_taskhistory_changelist", "django_tasks_q_consumerheartbeat_changelist"]
)
def test_list_pages_refuse_a_100000_character_search(root, page: str) -> None:
    response = root.get(reverse(f"admin:{page}"), {"q": "x" * 100_000})
    assert response.status_code == 200
    assert "The search text is too long (100,000 characters" in response.content.decode()
    assert root.get(reverse(f"admin:{page}"), {"q": "x" * 200}).status_code == 200


@pytest.mark.parametrize(
    "query",
    [{"last_heartbeat__year": "99999"}, {"started_at__year": "0"}, {"stopped_at__year": "99999", "pk": "1"}],
)
def test_a_list_filter_on_a_year_out_of_range_redirects(root, query: dict) -> None:
    url = reverse("admin:django_tasks_q_consumerheartbeat_changelist")
    response = root.get(url, query)
    assert response.status_code == 302 and response["Location"].endswith("?e=1")
    assert root.get(response["Location"]).status_code == 200
