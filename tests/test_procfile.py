"""The Procfile, run as a platform runs it: real gunicorn and a real worker, HTTP to PostgreSQL."""

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests import tables
from tests.conftest import PAYLOADS, SECRET, VERIFY_TOKEN, Backend, load_expected, seed
from tests.processes import PROJECT_ROOT, free_port, wait_until
from webhook.signature import sign

pytestmark = pytest.mark.slow


def procfile(kind: str) -> str:
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{kind}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {kind}: line in the Procfile")


def launch(kind: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    with log.open("wb") as out:
        return subprocess.Popen(
            ["bash", "-c", f"exec {procfile(kind)}"],
            cwd=PROJECT_ROOT,
            env={**os.environ, "PATH": path, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def deployment(postgres_backend: Backend, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    seed(postgres_backend.db)
    port = free_port()
    env = {
        "PORT": str(port),
        "REDIS_URL": postgres_backend.redis_url,
        "DATABASE_URL": postgres_backend.db.engine.url.render_as_string(hide_password=False),
        "WHATSAPP_APP_SECRET": SECRET,
        "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "WAHOOKS_QUEUE": f"procfile-{uuid.uuid4().hex[:6]}",
        "LOG_FORMAT": "json",
    }
    processes = [launch("web", env, tmp_path / "web.log"), launch("worker", env, tmp_path / "worker.log")]
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{url}/healthz"), 30, "gunicorn answering")
        yield url, tmp_path
    finally:
        for process in processes:
            _stop(process)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def test_web_and_worker_lines_take_a_signed_post_to_the_tables(
    deployment: tuple[str, Path], postgres_backend: Backend
) -> None:
    url, logs = deployment
    challenge = requests.get(
        f"{url}/webhook",
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "4242"},
        timeout=5,
    )
    assert (challenge.status_code, challenge.text) == (200, "4242")
    body = (PAYLOADS / "batched_mixed.json").read_bytes()
    answer = requests.post(
        f"{url}/webhook", data=body, headers={"X-Hub-Signature-256": sign(SECRET, body)}, timeout=5
    )
    assert answer.status_code == 200
    assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
    wait_until(lambda: bool(tables.outcomes(postgres_backend.db)), 30, "the worker storing the body")
    tables.assert_state(postgres_backend.db, load_expected("batched_mixed.json"))
    for log in ("web.log", "worker.log"):
        lines = (logs / log).read_text().splitlines()
        assert lines, f"{log} is empty"
        assert all(isinstance(json.loads(line), dict) for line in lines), f"{log} has a line that is not JSON"
        assert SECRET not in (logs / log).read_text()
