"""Local server processes the tools start (Label Studio, vLLM): own process group, log file, bounded
health wait, stopped by PID (never by name)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


class ServerError(RuntimeError):
    pass


def poll(predicate, timeout: float, interval: float = 0.3):
    """Call `predicate` until it returns something true (returned) or `timeout` seconds pass (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def stop_process_group(pid: int, timeout: float = 20.0) -> bool:
    """SIGTERM the process group led by `pid`, SIGKILL it after `timeout`; True if it was running."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        _reap(pid)
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def running_pid(pid_path: Path, expect: str) -> int | None:
    """The PID in `pid_path` if that process is alive and its command line contains `expect`."""
    try:
        pid = int(pid_path.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if expect in cmdline else None


class ServerProcess:
    """A server in its own process group. Subclasses give `command`, `environment` and `healthy`."""

    name = "server"
    error = ServerError
    umask: int = -1
    """The server's umask (-1: ours); a server that writes secrets to disk sets 0o077."""

    def __init__(self, port: int, log_path: Path, host: str = "127.0.0.1", pid_path: Path | None = None):
        self.port, self.log_path, self.host, self.pid_path = port, log_path, host, pid_path
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def healthy(self) -> bool:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, timeout: float = 300.0) -> None:
        if port_in_use(self.port, self.host):
            raise self.error(f"port {self.port} on {self.host} is already in use")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(self.log_path.parent), umask=self.umask)
        if self.pid_path is not None:
            self.pid_path.write_text(str(self.process.pid))
        try:
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise self.error(f"{self.name} exited with code {self.process.returncode}; log tail:\n{self.log_tail()}")
            try:
                if self.healthy():
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.5)
        raise self.error(f"{self.name} not healthy after {timeout:.0f} s; log tail:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is not None:
            stop_process_group(self.process.pid, timeout)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self.process = None
        if self.pid_path is not None:
            self.pid_path.unlink(missing_ok=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class ClescProcess:
    """A `clesc` subcommand in its own process group, logging to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, exe: str | None = None):
        self.args, self.env, self.log = args, env, log
        self.exe = exe or str(Path(sys.executable).with_name("clesc"))
        self.popen: subprocess.Popen | None = None

    def start(self) -> ClescProcess:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen([self.exe, *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen is not None:
            if sig == signal.SIGKILL:
                os.killpg(self.popen.pid, signal.SIGKILL)
            else:
                stop_process_group(self.popen.pid, timeout=15)
            self.popen.wait(timeout=15)
            self.popen = None
