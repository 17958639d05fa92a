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
def test_spec_fuzzing_finds_no_server_error_and_no_spec_violation(tmp_path):
    port = free_port()
    env = {
        "O2O_DATA_DIR": str(tmp_path / "var"),
        "O2O_ADMIN_KEY": "fuzz-admin",
        "O2O_DEALS": "",
        "O2O_ARTIFACTS": str(tmp_path / "artifacts"),
    }
    proc, _ = start_gunicorn(port, env)
    try:
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
                "Authorization: Bearer fuzz-admin",
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
