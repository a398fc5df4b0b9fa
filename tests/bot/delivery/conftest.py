"""The delivery side's own fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.delivery import SmtpServer


@pytest.fixture
def smtp_server(unused_tcp_port: int) -> Iterator[SmtpServer]:
    """A real SMTP server on loopback that keeps what it accepts (tests/support/delivery.py)."""
    server = SmtpServer(unused_tcp_port)
    server.start()
    yield server
    server.stop()
