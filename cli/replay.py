"""`wahooks replay`: post payload files to a webhook URL, signed as Meta signs them."""

import sys
import threading
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from webhook.signature import sign

PROGRESS_FROM = 20  # files; fewer finish too fast for a bar to help


def payload_files(paths: Iterable[Path]) -> list[Path]:
    """Every .json file named or below a named folder, in a stable order."""
    found: list[Path] = []
    for path in paths:
        found += sorted(path.rglob("*.json")) if path.is_dir() else [path]
    return found


class Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, 0, enabled
        self._lock = threading.Lock()

    def step(self) -> None:
        with self._lock:
            self.done += 1
            if self.enabled:
                filled = 30 * self.done // self.total
                sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}")
                if self.done == self.total:
                    sys.stderr.write("\n")


def replay(
    url: str, files: list[Path], secret: str, concurrency: int = 4, timeout: float = 10.0
) -> Counter[str]:
    """POST each file's exact bytes with X-Hub-Signature-256; count the answers by status code."""
    progress = Progress(len(files), enabled=len(files) >= PROGRESS_FROM)
    local = threading.local()

    def post(path: Path) -> str:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        body = path.read_bytes()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, body)}
        try:
            return str(session.post(url, data=body, headers=headers, timeout=timeout).status_code)
        except requests.RequestException as error:
            return f"error ({type(error).__name__})"
        finally:
            progress.step()

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return Counter(pool.map(post, files))
