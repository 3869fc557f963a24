"""The real `web` process in a subprocess (uvicorn with the app factory, as the Procfile runs it),
and a headless Chromium driven by Selenium, for the browser tests."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

from tests.worker_process import BIN, PROJECT, start_process, stop_process

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_line(name: str) -> str:
    """The command of the Procfile's `name:` line."""
    for line in (PROJECT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


class WebProcess:
    """`uvicorn --factory web.app:create_app` on a free port (`env["PORT"]` when set)."""

    def __init__(self, env: dict, log_path: Path, *, procfile: bool = False):
        self.env, self.log_path, self.procfile = env, log_path, procfile
        self.port = int(env.get("PORT") or free_port())
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def _args(self) -> list[str]:
        if not self.procfile:
            return [str(BIN / "uvicorn"), "--factory", "web.app:create_app", "--host", "127.0.0.1",
                    "--port", str(self.port)]
        # The Procfile's own web line, through a shell as honcho runs it (on the loopback only).
        line = procfile_line("web").replace("--host 0.0.0.0", "--host 127.0.0.1")
        self.env = {**self.env, "PORT": str(self.port), "PATH": f"{BIN}{os.pathsep}{self.env.get('PATH', '')}"}
        return ["sh", "-c", f"exec {line}"]

    def start(self, timeout: float = 30) -> "WebProcess":
        self.proc = start_process(self._args(), self.env, self.log_path, "web", self._healthy, self.log, timeout)
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc, 15)


def chromium_driver(width: int = 1280, height: int = 900):
    """Headless Debian Chromium through its chromedriver (no download of anything)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver
