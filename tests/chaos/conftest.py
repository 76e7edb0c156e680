"""Fixtures of the chaos tests: the storage a test runs against."""

import pytest

from tests.support.deployments import STORAGES


@pytest.fixture(params=STORAGES)
def kind(request: pytest.FixtureRequest) -> str:
    """The storage under test: each chaos test that asks for it runs once per persistent storage."""
    return request.param
