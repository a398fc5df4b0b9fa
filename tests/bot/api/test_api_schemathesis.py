"""Schemathesis against the live registry API on loopback: requests generated
from the OpenAPI document, valid and invalid, answered without a 5xx, with a documented status,
content type and body, and every request the document forbids refused (negative_data_rejection).
Bounded: a few examples per operation and a time budget; marked slow."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from services.kezek import Kezek
from tests.support.api import TOKEN, serving

pytestmark = pytest.mark.slow

CONFIG = """
[checks.negative_data_rejection]
# 413: a list over maxItems (too_many_rows) or a body over the size limit
expected-statuses = ["400", "401", "403", "404", "405", "409", "413", "422", "429"]
"""
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "negative_data_rejection")


async def test_schemathesis_finds_no_server_error_and_no_disagreement(kz: Kezek, unused_tcp_port: int,
                                                                       tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG, encoding="utf-8")
    st = Path(sys.executable).with_name("st")
    task = await serving(kz, unused_tcp_port)
    try:
        proc = await asyncio.create_subprocess_exec(
            str(st), "--config-file", str(config), "run",
            f"http://127.0.0.1:{unused_tcp_port}/api/v1/openapi.json",
            "-H", f"Authorization: Bearer {TOKEN}", "--checks", CHECKS, "--max-examples", "8",
            "--workers", "1", "--max-time", "25", "--seed", "16", "--request-timeout", "20",
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""})
        output, _ = await asyncio.wait_for(proc.communicate(), 240)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    text = output.decode("utf-8", "replace")
    assert proc.returncode == 0, text[-6000:]
    assert "generated" in text and "failures" not in text.splitlines()[-1], text[-3000:]
