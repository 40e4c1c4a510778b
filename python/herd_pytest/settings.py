"""What herd tells a worker through its environment (``HERD_*``), read once and checked."""

from __future__ import annotations

import os

import pytest

ENV_ENDPOINT = "HERD_ENDPOINT"
ENV_TOKEN = "HERD_TOKEN"
ENV_WORKER_ID = "HERD_WORKER_ID"
ENV_INCARNATION = "HERD_INCARNATION"
ENV_APPLIANCE = "HERD_APPLIANCE"
ENV_CONNECT_TIMEOUT = "HERD_CONNECT_TIMEOUT"
ENV_STATUS_FILE = "HERD_STATUS_FILE"
#: herd's ``--chaos`` requests: ``IDENTITY:ACTION=VALUE`` items separated by ``;``.
ENV_WORKER_FAULT = "HERD_WORKER_FAULT"
#: Set to ``0`` to let the worker's interpreter exit the slow, ordinary way.
ENV_FAST_EXIT = "HERD_FAST_EXIT"


def under_herd():
    """Whether this pytest runs as a herd worker (``HERD_ENDPOINT`` is set)."""
    return bool(os.environ.get(ENV_ENDPOINT))


def appliance():
    """The appliance this worker owns (``HERD_APPLIANCE``), or None."""
    return os.environ.get(ENV_APPLIANCE) or None


class Settings:
    """This spawn's settings: where the coordinator is, who we are, what we are asked to do."""

    def __init__(self, environ=None):
        env = os.environ if environ is None else environ
        self.endpoint = env[ENV_ENDPOINT]
        self.token = env.get(ENV_TOKEN, "")
        self.worker_id = env.get(ENV_WORKER_ID, "w0")
        try:
            self.incarnation = int(env.get(ENV_INCARNATION) or 1)
        except ValueError:
            raise pytest.UsageError(
                f"herd: {ENV_INCARNATION} must be an integer, not {env[ENV_INCARNATION]!r}"
            )
        try:
            self.connect_timeout = float(env.get(ENV_CONNECT_TIMEOUT) or 30)
        except ValueError:
            raise pytest.UsageError(
                f"herd: {ENV_CONNECT_TIMEOUT} must be a number of seconds, "
                f"not {env[ENV_CONNECT_TIMEOUT]!r}"
            )
        #: This spawn's name: worker id and incarnation (``w3.2``).
        self.identity = f"{self.worker_id}.{self.incarnation}"
        #: Fault injection (herd's --chaos): what this spawn is asked to do to itself.
        self.faults = parse_faults(env.get(ENV_WORKER_FAULT, ""), self.identity)
        #: Where to write the id of each test as it starts (``HERD_STATUS_FILE``), or None.
        self.status_path = env.get(ENV_STATUS_FILE) or None


def parse_faults(spec, identity):
    """herd's fault requests for this spawn: ``IDENTITY:ACTION=VALUE`` items separated by ``;``."""
    faults = {}
    for item in spec.split(";"):
        who, _, action = item.strip().partition(":")
        if who == identity and action:
            name, _, value = action.partition("=")
            faults[name] = value
    return faults
