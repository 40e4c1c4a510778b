"""The handshake: ``hello`` (who we are, with herd's fingerprint) and the wait for ``welcome``."""

from __future__ import annotations

import os
import subprocess

import pytest

from . import PROTOCOL_VERSION
from .channel import HEARTBEAT_S, ReplyTimeout


def greet(channel, settings):
    """Connects, says ``hello`` and waits for ``welcome`` (``HERD_CONNECT_TIMEOUT`` seconds):
    returns it, or None when the coordinator said ``stop`` instead."""
    # The socket's identity: this spawn's name and a random nonce, so nobody can take it first.
    channel.connect(f"{settings.identity}.{os.urandom(16).hex()}")
    channel.send(hello_message(settings))
    try:
        return channel.receive_until({"welcome"}, timeout_s=settings.connect_timeout)
    except ReplyTimeout:
        channel.give_up(
            f"herd: worker {settings.identity} got no welcome from the coordinator at "
            f"{settings.endpoint} within {settings.connect_timeout:g}s"
        )


def hello_message(settings):
    """The first message: protocol, identity, token, pid, heartbeat and fingerprint."""
    return {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "worker": settings.worker_id,
        "incarnation": settings.incarnation,
        "token": settings.token,
        "pid": os.getpid(),
        "heartbeat": HEARTBEAT_S,
        **fingerprint(),
    }


def fingerprint():
    """``{"fingerprint": ...}`` for ``hello``: herd's version (``HERD_VERSION``, set by herd) and
    the output of ``HERD_FINGERPRINT_CMD``, run on this host; empty when the version is unknown."""
    version = os.environ.get("HERD_VERSION")
    if not version:
        return {}
    cmd = os.environ.get("HERD_FINGERPRINT_CMD", "").strip()
    if not cmd:
        return {"fingerprint": f"herd {version}"}
    done = subprocess.run(cmd, shell=True, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        raise pytest.UsageError(f"herd: the fingerprint command `{cmd}` failed: {done.stderr.strip()}")
    return {"fingerprint": f"herd {version} | {done.stdout.strip()}"}
