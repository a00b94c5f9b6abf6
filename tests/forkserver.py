"""A fork server for the tests that run documented commands: each command is still its own process, with its own
argv, folder, environment, standard streams, exit status and signals, but forked from a process that has already
imported torch, torchvision and polypbench (about 4 s of CPU for each command that trains, predicts or loads
crops, otherwise).

    server = ForkServer.start(env)            # python -m tests.forkserver SOCKET, with the imports done
    server.shim(bin_dir)                      # bin_dir/polypbench and bin_dir/python run through it
    ...
    server.stop()

A command connects to the server's Unix socket (:data:`CLIENT`, a plain ``python -S`` script), sends its argv,
folder and environment and passes its three standard descriptors; the server forks a monitor, which forks the
command, tells the client the command's pid (the client forwards SIGTERM, SIGINT and SIGHUP to it) and then its
exit status, which the client exits with.
"""

from __future__ import annotations

import array
import importlib
import json
import os
import runpy
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

LEADERBOARD_PRELOAD = ("polypbench.cli", "polypbench.leaderboard.app", "polypbench.leaderboard.worker",
                       "polypbench.leaderboard.client", "polypbench.leaderboard.board")
"""The leaderboard's commands (serve, worker, submit, add-team, close-phase, export): no torch, as their processes
have none (the worker's model runs are its own ``python -m polypbench.inference`` children)."""
PRELOAD = ("torch", "torchvision", "pandas", "pyarrow.parquet", "datasets", "polypbench.load", "polypbench.train.loop",
           "polypbench.inference.predict", "polypbench.export", "polypbench.evaluate", *LEADERBOARD_PRELOAD)
"""What the server imports once by default (the commands the docs run: training, loading, the leaderboard's); a
command imports anything else itself."""
CLIENT = Path(__file__).with_name("forkclient.py")


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    return data


def _run(request: dict[str, object]) -> int:
    """In the forked command: become the requested process, run it, return its exit status."""
    os.chdir(str(request["cwd"]))
    os.environ.clear()
    os.environ.update(request["env"])  # type: ignore[arg-type]
    argv = list(request["argv"])  # type: ignore[call-overload]
    try:
        if argv[0] == "-c":  # python -c CODE [ARGS]
            sys.argv = ["-c", *argv[2:]]
            exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
        else:  # polypbench ARGS, or python -m MODULE ARGS
            module = "polypbench" if argv[0] == "polypbench" else argv[1]
            sys.argv = [module, *argv[1 if argv[0] == "polypbench" else 2:]]
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    return 0


def _serve_one(conn: socket.socket) -> None:
    """In the monitor: fork the command, report its pid and then its exit status to the client."""
    fds = array.array("i")
    msg, ancdata, _, _ = conn.recvmsg(65536, socket.CMSG_LEN(3 * fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    msg += _recv_exact(conn, max(0, 4 - len(msg)))
    size = struct.unpack("!I", msg[:4])[0]
    msg = msg[4:]
    msg += _recv_exact(conn, size - len(msg))
    request = json.loads(msg)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    pid = os.fork()
    if pid == 0:
        conn.close()
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        for fd in fds:
            os.close(fd)
        sys.stdin = os.fdopen(0, "r", closefd=False)
        sys.stdout = os.fdopen(1, "w", closefd=False)
        sys.stderr = os.fdopen(2, "w", closefd=False)
        code = _run(request)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    for fd in fds:
        os.close(fd)
    conn.sendall(struct.pack("!i", pid))
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)  # -N: killed by signal N
    conn.sendall(struct.pack("!i", code))


def serve(path: str, preload: list[str]) -> None:
    """The server process: import ``preload``, then fork a monitor for each connection."""
    for name in preload:
        importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    os.rename(path + ".tmp", path)  # the socket appears ready to connect
    listener.listen(16)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # monitors are reaped by the kernel
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            try:
                _serve_one(conn)
            finally:
                os._exit(0)
        conn.close()


@dataclass
class ForkServer:
    process: subprocess.Popen[bytes]
    socket_path: Path

    @classmethod
    def start(cls, env: dict[str, str], timeout_s: float = 120, preload: tuple[str, ...] = PRELOAD) -> ForkServer:
        folder = Path(tempfile.mkdtemp(prefix="polypbench-fork-"))
        path = folder / "socket"
        root = str(Path(__file__).resolve().parents[1])
        process = subprocess.Popen([sys.executable, "-m", "tests.forkserver", str(path), *preload], cwd=root,
                                   env={**env, "PYTHONPATH": root})
        deadline = time.monotonic() + timeout_s
        while not path.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                shutil.rmtree(folder, ignore_errors=True)
                raise RuntimeError(f"the fork server did not start (exit {process.poll()})")
            time.sleep(0.05)
        return cls(process, path)

    def command(self, *argv: str) -> list[str]:
        """The argv that runs ``argv`` (``polypbench ...``, ``-c CODE``, ``-m MODULE ...``) through the server."""
        return [sys.executable, "-S", str(CLIENT), str(self.socket_path), *argv]

    def shim(self, bin_dir: Path) -> None:
        """``bin_dir/polypbench`` runs through the server (put ``bin_dir`` first on PATH)."""
        script = bin_dir / "polypbench"
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "{CLIENT}" "{self.socket_path}" polypbench "$@"\n')
        script.chmod(0o755)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)
        shutil.rmtree(self.socket_path.parent, ignore_errors=True)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:])
