"""Schemathesis against the served OpenAPI spec: no server errors, no response off the spec.

Runs the real service under gunicorn on loopback with a bounded budget (about 30 s), every
endpoint included, the admin key sent so that the merchant and admin routes get past auth.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from app.storage.embedded import free_port
from scripts.bench.harness import start_gunicorn

pytestmark = pytest.mark.slow  # system tier: real processes

ST = shutil.which("st", path=os.path.dirname(sys.executable))


@pytest.mark.skipif(ST is None, reason="schemathesis is not installed (the test extra: requirements/test.txt)")
@pytest.mark.parametrize("caller", ["admin", "merchant"])  # the merchant's own writes, and everyone's reads
def test_spec_fuzzing_finds_no_server_error_and_no_spec_violation(tmp_path, caller):
    port = free_port()
    env = {
        "O2O_DATA_DIR": str(tmp_path / "var"),
        "O2O_ADMIN_KEY": "fuzz-admin",
        "O2O_DEALS": "",
        "O2O_ARTIFACTS": str(tmp_path / "artifacts"),
    }
    proc, _ = start_gunicorn(port, env)
    try:
        key = "fuzz-admin"
        if caller == "merchant":  # a real merchant of the bundled catalogue, through its key
            import redis

            from app.storage.apikeys import create_key

            sock = tmp_path / "var" / "redis" / "redis.sock"
            key = create_key(redis.Redis(unix_socket_path=str(sock)), "m-unicafe")
        run = subprocess.run(
            [
                ST,
                "run",
                f"http://127.0.0.1:{port}/openapi.json",
                "--checks",
                "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
                "--max-examples",
                "25",
                "--seed",
                "1",
                "-H",
                f"Authorization: Bearer {key}",
                "--request-timeout",
                "10",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tempfile.gettempdir(),
            # The fuzzing client hangs under libfaketime (its event loop waits on a faked
            # clock); the server under test keeps whatever clock the suite runs with.
            env={k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FAKETIME")},
        )
    finally:
        proc.terminate()
        proc.wait(10)
    tail = "\n".join(run.stdout.splitlines()[-40:])
    assert run.returncode == 0, tail
    assert " passed" in tail
