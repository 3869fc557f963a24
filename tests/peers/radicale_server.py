"""A real Radicale CalDAV server on a free loopback port, for the calendar integration tests.

    with RadicaleServer(tmp_path) as server:          # started, one user (htpasswd, plain)
        url = server.make_calendar("work")            # http://127.0.0.1:<port>/kim/work/
        server.put_event("work", "lunch.ics", ics)    # an appointment made directly in Radicale
        server.stored_events("work")                  # [icalendar VEVENT], read from disk
        server.stop(); server.start()                 # down and back, same port and storage

What the server holds is read from its storage folder, not through CalDAV, so the tests check
what the `caldav` client wrote without trusting that client to read it back.
"""
from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from icalendar import Calendar

USER, PASSWORD = "kim", "kim-calendar-secret"
START_TIMEOUT_SECONDS = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RadicaleServer:
    """`python -m radicale` as a subprocess of the test, with its own config and storage."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.storage = self.folder / "storage"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.folder / "radicale.log"
        self._process: subprocess.Popen | None = None
        (self.folder / "users").write_text(f"{USER}:{PASSWORD}\n")
        # A config file of our own, so no system or user Radicale config is read.
        (self.folder / "config").write_text(
            f"[server]\nhosts = 127.0.0.1:{self.port}\n"
            f"[auth]\ntype = htpasswd\nhtpasswd_filename = {self.folder / 'users'}\n"
            f"htpasswd_encryption = plain\ndelay = 0\n"
            f"[storage]\nfilesystem_folder = {self.storage}\n"
            f"[logging]\nlevel = warning\n"
        )

    # -- life ---------------------------------------------------------------------------------
    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "radicale", "--config", str(self.folder / "config")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C aimed at pytest does not race our stop
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"radicale exited with {self._process.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"radicale did not listen on {self.base_url}: {self.log_tail()}")

    def stop(self) -> None:
        """Stop the server we started (by its own handle), keeping its storage."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> "RadicaleServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, limit: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-limit:] if self.log_path.exists() else ""

    # -- content ------------------------------------------------------------------------------
    def calendar_url(self, name: str) -> str:
        return f"{self.base_url}/{USER}/{name}/"

    def _request(self, method: str, url: str, body: bytes = b"", content_type: str = "text/xml") -> int:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request = urllib.request.Request(url, data=body or None, method=method,
                                         headers={"Authorization": f"Basic {token}", "Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status

    def make_calendar(self, name: str) -> str:
        """Create a calendar collection (MKCALENDAR) and return its URL."""
        url = self.calendar_url(name)
        self._request("MKCALENDAR", url)
        return url

    def put_event(self, calendar: str, href: str, ics: str) -> None:
        """Store an event directly, as the owner's own calendar app would."""
        self._request("PUT", self.calendar_url(calendar) + href, ics.encode(), "text/calendar; charset=utf-8")

    def stored_events(self, calendar: str) -> list:
        """Every VEVENT stored in the calendar (one resource may hold several), read from the
        storage folder: a duplicate shows as a second event with the same UID."""
        folder = self.storage / "collection-root" / USER / calendar
        return [event for path in sorted(folder.iterdir())
                if path.is_file() and not path.name.startswith(".Radicale")
                for event in Calendar.from_ical(path.read_bytes()).walk("VEVENT")]
