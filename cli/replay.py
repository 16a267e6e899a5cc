"""`wahooks replay`: post payload files to a webhook URL, signed as Meta signs them."""

import threading
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress

from webhook.signature import sign

PROGRESS_FROM = 20  # files; fewer finish too fast for a bar to help


def payload_files(paths: Iterable[Path]) -> list[Path]:
    """Every .json file named or below a named folder, in a stable order."""
    found: list[Path] = []
    for path in paths:
        found += sorted(path.rglob("*.json")) if path.is_dir() else [path]
    return found


def replay(
    url: str, files: list[Path], secret: str, concurrency: int = 4, timeout: float = 10.0
) -> Counter[str]:
    """POST each file's exact bytes with X-Hub-Signature-256; count the answers by status code."""
    progress = Progress(
        *Progress.get_default_columns(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        disable=len(files) < PROGRESS_FROM,
    )
    task = progress.add_task("replay", total=len(files))
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
            progress.advance(task)

    with progress, ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return Counter(pool.map(post, files))
