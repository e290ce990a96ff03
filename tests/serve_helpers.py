"""Helpers of the `ofa-sic serve` tests: a real server in a subprocess, and `ofa-sic caption`'s captions to compare with."""
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

from helpers import fairseq_command, ofa_sic

LISTENING = re.compile(r"ofa-sic serve: listening on (http://\S+)")


class RunningServer:
    """`ofa-sic serve` on a free loopback port (`--port 0`); `url` ends with "/", `log` holds its output."""

    def __init__(self, checkpoint, demo_data, log: Path, *extra, timeout: float = 180):
        self.log = log
        command = [fairseq_command("ofa-sic"), "serve", "--path", checkpoint, "--data", demo_data["data"],
                   "--bpe-dir", demo_data["bpe"], "--cpu", "--port", "0", *extra]
        with open(log, "w") as out:
            self.process = subprocess.Popen([str(part) for part in command], stdout=out, stderr=subprocess.STDOUT)
        self.url = self._wait_for_url(timeout)

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log.read_text())
            if match:
                return match.group(1)
            if self.process.poll() is not None:
                pytest.fail(f"ofa-sic serve exited with {self.process.returncode}:\n{self.log.read_text()[-6000:]}")
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"ofa-sic serve did not listen within {timeout} s:\n{self.log.read_text()[-6000:]}")

    def stop(self) -> None:
        """End the server (SIGTERM, then SIGKILL after 20 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def loopback() -> requests.Session:
    """A new HTTP session (one per call, so threads never share one) that ignores proxies named in the environment."""
    session = requests.Session()
    session.trust_env = False
    return session


def demo_images(demo_data, count: int):
    """The first `count` demo image files (JPEG, as the demo data writes them), sorted by name."""
    return sorted((demo_data["raw"] / "yfcc_images").glob("*.jpg"))[:count]


def captions_of_ofa_sic_caption(checkpoint, demo_data, images) -> dict:
    """{(image path, style): caption} printed by `ofa-sic caption IMAGES --all-styles` (default settings)."""
    code, stdout, stderr = ofa_sic("caption", *images, "--all-styles", "--path", checkpoint, "--data", demo_data["data"],
                                   "--bpe-dir", demo_data["bpe"], "--cpu")
    assert code == 0, stderr
    table = {}
    for line in stdout.splitlines():
        path, style, caption = line.split("\t")
        table[(path, style)] = caption
    return table
