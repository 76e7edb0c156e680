"""One test per system check id (django_tasks_q.E001 … W003)."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from django.test import override_settings

from django_tasks_q import crontab
from django_tasks_q.backends.base import BaseStorage
from django_tasks_q.checks import check_tasks_q_settings
from django_tasks_q.decorators import periodic_task


def ids(setting: Any) -> list[str]:
    with override_settings(TASKS_Q=setting):
        return [message.id for message in check_tasks_q_settings()]


def messages(setting: Any) -> list[str]:
    with override_settings(TASKS_Q=setting):
        return [message.msg for message in check_tasks_q_settings()]


def test_valid_memory_queue_in_immediate_mode_has_no_messages() -> None:
    assert ids({"default": {"BACKEND": "memory", "IMMEDIATE": True}}) == []


@pytest.mark.parametrize("setting", [[], {}, {"": {"BACKEND": "memory"}}, {"default": "memory"}])
def test_e001_bad_shape(setting: Any) -> None:
    assert ids(setting) == ["django_tasks_q.E001"]


def test_e002_unknown_key_names_queue_and_key() -> None:
    assert ids({"mail": {"BACKEND": "memory", "WORKERS": 3}}) == ["django_tasks_q.E002"]
    assert "TASKS_Q['mail']: unknown key(s) ['WORKERS']" in messages({"mail": {"BACKEND": "memory", "WORKERS": 3}})[0]


@pytest.mark.parametrize(
    ("conf", "text"),
    [
        ({"BACKEND": "rabbit"}, "unknown backend 'rabbit'"),
        ({"BACKEND": "nowhere.Storage"}, "cannot import 'nowhere.Storage'"),
        ({"BACKEND": "django_tasks_q.exceptions.StorageError"}, "is not a BaseStorage subclass"),
        ({}, "has neither BACKEND nor URL"),
        ({"BACKEND": "sqlite", "URL": "memory://"}, "BACKEND 'sqlite' contradicts URL"),
    ],
)
def test_e003_bad_backend(conf: dict[str, Any], text: str) -> None:
    assert ids({"q": conf}) == ["django_tasks_q.E003"]
    assert text in messages({"q": conf})[0]


@pytest.mark.parametrize("url", ["nonsense", "ftp://host/x", "redis://", "sqlite://host/x.db", "redis://h:notaport/0"])
def test_e004_bad_url(url: str) -> None:
    assert ids({"q": {"URL": url}}) == ["django_tasks_q.E004"]


def test_e005_option_the_storage_does_not_accept() -> None:
    setting = {"q": {"BACKEND": "django_tasks_q.backends.blackhole.BlackHoleStorage", "OPTIONS": {"colour": 1}}}
    found = ids(setting)
    assert "django_tasks_q.E005" in found
    assert "BlackHoleStorage does not accept ['colour']" in messages(setting)[0]


def test_e006_redis_backend_without_redis_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "redis" else real(name))
    assert ids({"q": {"URL": "redis://127.0.0.1:6379/0"}}) == ["django_tasks_q.E006"]


def test_e007_pickle_without_signing() -> None:
    found = ids({"q": {"BACKEND": "memory", "IMMEDIATE": True, "SERIALIZER": "pickle", "SIGNING": False}})
    assert found == ["django_tasks_q.E007"]


def test_e008_lease_shorter_than_three_renewals() -> None:
    conf = {"BACKEND": "memory", "IMMEDIATE": True, "LEASE": 10, "CONSUMER": {"renew_interval": 5}}
    assert ids({"q": conf}) == ["django_tasks_q.E008"]
    conf["CONSUMER"] = {"renew_interval": 3}
    assert ids({"q": conf}) == []


@pytest.mark.parametrize("consumer", [{"wokers": 2}, {"workers": 0}, {"worker_type": "fibre"}, "fast"])
def test_e009_bad_consumer_options(consumer: Any) -> None:
    assert ids({"q": {"BACKEND": "memory", "IMMEDIATE": True, "CONSUMER": consumer}}) == ["django_tasks_q.E009"]


@pytest.mark.parametrize("conf", [{"LEASE": 0}, {"MAX_ATTEMPTS": 0}, {"RESULT_TTL": -5}])
def test_e010_bad_queue_option(conf: dict[str, Any]) -> None:
    assert ids({"q": {"BACKEND": "memory", "IMMEDIATE": True, **conf}}) == ["django_tasks_q.E010"]


def test_w001_per_process_storage_without_immediate() -> None:
    assert ids({"q": {"BACKEND": "memory"}}) == ["django_tasks_q.W001"]
    assert ids({"q": {"BACKEND": "blackhole"}}) == ["django_tasks_q.W001"]


def test_w002_storage_without_reliable_delivery() -> None:
    setting = {"q": {"BACKEND": "tests.django.test_checks.AtMostOnceStorage"}}
    assert ids(setting) == ["django_tasks_q.W002"]


def test_w003_periodic_tasks_on_a_queue_without_periodic_consumer() -> None:
    @periodic_task(crontab(), queue="checks-periodic")
    def heartbeat() -> None:
        return None

    conf = {"BACKEND": "memory", "IMMEDIATE": True, "CONSUMER": {"periodic": False}}
    assert ids({"checks-periodic": conf}) == ["django_tasks_q.W003"]
    assert ids({"checks-periodic": {**conf, "CONSUMER": {}}}) == []


class AtMostOnceStorage(BaseStorage):
    """A storage with only huey's seed methods (used by the W002 test through its dotted path)."""

    def __init__(self, name: str = "huey") -> None:
        super().__init__(name)


def test_e005_accepts_options_a_storage_forwards_to_its_client() -> None:
    assert ids({"q": {"URL": "redis://127.0.0.1:6379/0?socket_timeout=10", "OPTIONS": {"ssl": False}}}) == []
    assert ids({"q": {"URL": "redis://127.0.0.1:6379/0", "OPTIONS": {"sockettimeout": 1}}}) == ["django_tasks_q.E005"]


@pytest.mark.parametrize(
    "conf", [{"SERIALIZER": "yaml"}, {"COMPRESSION": "high"}, {"MAX_MESSAGE_SIZE": 10}, {"SIGNING": 123}]
)
def test_e010_bad_codec_option(conf: dict[str, Any]) -> None:
    assert ids({"q": {"BACKEND": "memory", "IMMEDIATE": True, **conf}}) == ["django_tasks_q.E010"]
