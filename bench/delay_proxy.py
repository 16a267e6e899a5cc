"""bench/delay_proxy: TCP forwarding that adds a round-trip time, as between hosts or to a managed service.

This machine's kernel has no netem, so the latency is added in user space: every byte a client sends
is held for --delay-ms before it goes on to the server; answers come back at once. For a
request-and-answer protocol (Redis, PostgreSQL) that adds the delay to each round trip, and bytes keep
their order. Each connection gets two threads: one that reads the client and stamps what it read with
its due time, one that sends it on when due (time.sleep is precise to tens of microseconds here; an
asyncio timer rounds up to whole milliseconds).

  .venv/bin/python bench/delay_proxy.py --delay-ms 1 --route 127.0.0.1:7001=127.0.0.1:6379 [--route ...]

Prints `ready` once every route listens; stops on SIGTERM or SIGINT. Used by bench/e2e.py --added-rtt-ms.
"""

import argparse
import collections
import contextlib
import signal
import socket
import sys
import threading
import time
from types import FrameType

CHUNK = 256 * 1024


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


class Connection:
    """One client connection and its server connection: client bytes held `delay` seconds, answers not."""

    def __init__(self, client: socket.socket, target: tuple[str, int], delay: float) -> None:
        self.client = client
        self.server = socket.create_connection(target)
        for sock in (client, self.server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.delay = delay
        self.held: collections.deque[tuple[float, bytes]] = collections.deque()
        self.ready = threading.Condition()
        self.closed = False

    def start(self) -> None:
        for target in (self._hold_requests, self._send_when_due, self._pass_answers):
            threading.Thread(target=target, daemon=True).start()

    def _hold_requests(self) -> None:
        try:
            while data := self.client.recv(CHUNK):
                with self.ready:
                    self.held.append((time.monotonic() + self.delay, data))
                    self.ready.notify()
        except OSError:
            pass
        self._close()

    def _send_when_due(self) -> None:
        try:
            while True:
                with self.ready:
                    while not self.held and not self.closed:
                        self.ready.wait()
                    if not self.held:
                        return
                    due, data = self.held.popleft()
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                self.server.sendall(data)
        except OSError:
            self._close()

    def _pass_answers(self) -> None:
        try:
            while data := self.server.recv(CHUNK):
                self.client.sendall(data)
        except OSError:
            pass
        self._close()

    def _close(self) -> None:
        with self.ready:
            self.closed = True
            self.ready.notify()
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def serve(listen: tuple[str, int], target: tuple[str, int], delay: float) -> socket.socket:
    server = socket.create_server(listen, backlog=256)

    def accept() -> None:
        while True:
            client, _ = server.accept()
            try:
                Connection(client, target, delay).start()
            except OSError:  # the target is down: the client sees its connection close, as it would
                client.close()

    threading.Thread(target=accept, daemon=True).start()
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, required=True, help="added to every round trip")
    parser.add_argument("--route", action="append", required=True, help="LISTEN_HOST:PORT=TARGET_HOST:PORT")
    args = parser.parse_args()
    for route in args.route:
        listen, _, target = route.partition("=")
        serve(_address(listen), _address(target), args.delay_ms / 1000)
    print("ready", flush=True)
    stop = threading.Event()

    def finish(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
