"""Quick API tests sharing one module-scoped client (set up once per group)."""
import time

import pytest


@pytest.fixture(scope="module")
def client(herd_appliance):
    time.sleep(0.2)  # an expensive login, paid once per worker that runs this module
    return {"appliance": herd_appliance}


@pytest.mark.parametrize("endpoint", ["users", "groups", "roles", "tokens"])
def test_list(client, endpoint):
    time.sleep(0.05)
    assert endpoint


def test_login(client):
    assert client is not None


@pytest.mark.xfail(reason="pagination bug #42")
def test_pagination(client):
    assert False
