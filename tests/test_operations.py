"""What the platform team sees: request ids, JSON logs, /metrics, /readyz, and a graceful
shutdown that keeps buffered impressions."""

import json
import logging
import re
import signal
import urllib.request

import pytest

from tests.support.redis import connect


def test_a_request_id_is_kept_or_made_and_echoed(client):
    r = client.get("/livez", headers={"X-Request-ID": "edge-7f3a.42"})
    assert r.headers["X-Request-ID"] == "edge-7f3a.42"
    made = client.get("/livez").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    # Not a header value this service would put in its logs: replaced by its own.
    odd = client.get("/livez", headers={"X-Request-ID": "x" * 300}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", odd)


def test_log_lines_are_json_with_the_request_id(app):
    from app.http.observability import JsonFormatter

    with app.test_request_context("/v1/stores/nearby", headers={"X-Request-ID": "req-1"}):
        app.preprocess_request()
        record = logging.LogRecord("app", logging.WARNING, __file__, 1, "slow %s", ("redis",), None)
        line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-1" and line["message"] == "slow redis" and line["level"] == "WARNING"
    assert line["path"] == "/v1/stores/nearby" and line["ts"].endswith("Z")


def _small_server(tmp_path, redis_url, hand_placed_csv) -> dict:
    """A gunicorn's environment: the hand-placed stores, no deals or model, files under tmp_path."""
    return {
        "REDIS_URL": redis_url,
        "O2O_CATALOGUE": str(hand_placed_csv),
        "O2O_DEALS": "",
        "O2O_BASE_ORDERS": "",
        "O2O_ARTIFACTS": str(tmp_path / "artifacts"),
        "O2O_DATA_DIR": str(tmp_path / "var"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }


def _count(text: str, route: str, status: str) -> float:
    pattern = rf'o2o_request_seconds_count\{{method="GET",route="{re.escape(route)}",status="{status}"\}} (\S+)'
    found = re.search(pattern, text)
    return float(found[1]) if found else 0.0


def test_metrics_count_requests_by_route_and_status(client):
    before = client.get("/metrics").get_data(as_text=True)
    for _ in range(3):
        client.get("/v1/stores/n100")
    client.get("/v1/stores/no-such-store")
    text = client.get("/metrics").get_data(as_text=True)
    assert _count(text, "/v1/stores/<store_id>", "200") - _count(before, "/v1/stores/<store_id>", "200") == 3
    assert _count(text, "/v1/stores/<store_id>", "404") - _count(before, "/v1/stores/<store_id>", "404") == 1
    for name in ("o2o_redis_breaker_open", "o2o_impressions_buffered", "o2o_index_stores", "o2o_model_info"):
        assert name in text


def test_readyz_waits_for_a_model_that_is_there_to_load(app, client):
    assert client.get("/readyz").get_json() == {"status": "ready", "waiting_for": [], "model_version": None}
    models = app.extensions["o2o"].models
    models.available = lambda: True  # artifacts on disk, none loaded yet
    r = client.get("/readyz")
    assert r.status_code == 503 and r.get_json()["waiting_for"] == ["model"]
    assert client.get("/livez").status_code == 200  # alive all the same


@pytest.mark.slow  # a real gunicorn
def test_gunicorn_sums_metrics_over_workers_and_flushes_impressions_on_shutdown(tmp_path, redis_url, hand_placed_csv):
    from app.storage import keys
    from app.storage.embedded import free_port
    from scripts.bench.harness import request, start_gunicorn

    port = free_port()
    proc, _ = start_gunicorn(port, _small_server(tmp_path, redis_url, hand_placed_csv))
    try:
        for i in range(40):  # spread over both workers
            status, _body, headers = request(
                port, "GET", "/v1/stores/nearby?lat=60.17&lon=24.94", headers={"X-Request-ID": f"t-{i}"}
            )
            assert status == 200 and headers["X-Request-ID"] == f"t-{i}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as resp:
            text = resp.read().decode()
        assert _count(text, "/v1/stores/nearby", "200") == 40  # both workers' samples, summed
        r = connect(redis_url)
        assert r.xlen(keys.IMPRESSIONS) < 40  # still buffered: flushes come every 2 s
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert r.xlen(keys.IMPRESSIONS) == 40  # the workers wrote their buffers on the way out


@pytest.mark.slow  # a real gunicorn
def test_what_gunicorn_refuses_itself_is_answered_as_problem_json(tmp_path, redis_url, hand_placed_csv):
    """A request line over 4094 bytes, 101 headers, a line that is not HTTP: gunicorn
    answers before the app runs, and still in problem+json that names the limit."""
    import socket

    from app.storage.embedded import free_port
    from scripts.bench.harness import request, start_gunicorn

    port = free_port()
    proc, _ = start_gunicorn(port, _small_server(tmp_path, redis_url, hand_placed_csv), workers=1)
    try:
        status, body, headers = request(port, "GET", "/v1/stores/nearby?lat=60.17&lon=24.94&category=" + "x" * 5000)
        assert status == 414 and headers["Content-Type"] == "application/problem+json"
        assert body["status"] == 414 and body["title"] == "URI Too Long"
        assert "4094" in body["detail"] and "shorter request line" in body["detail"]

        many = {f"X-Extra-{i}": "1" for i in range(101)}
        status, body, headers = request(port, "GET", "/livez", headers=many)
        assert status == 431 and headers["Content-Type"] == "application/problem+json"
        assert body["status"] == 431 and "fewer or smaller headers" in body["detail"]

        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"NOT AN HTTP LINE\r\n\r\n")
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        head, _, payload = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ") and b"Content-Type: application/problem+json" in head
        assert json.loads(payload)["status"] == 400

        status, _, _ = request(port, "GET", "/livez")
        assert status == 200  # the worker is still serving
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
