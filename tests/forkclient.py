"""The fork server's client (tests/forkserver.py), run as ``python -S forkclient.py SOCKET ARGV...``: it sends its
argv, folder and environment with its three standard descriptors, forwards SIGTERM, SIGINT and SIGHUP to the
command, and exits with the command's status (killed by a signal: killed by the same signal)."""

import array
import json
import os
import signal
import socket
import struct
import sys


def _recv_int(conn: socket.socket) -> int:
    data = b""
    while len(data) < 4:
        chunk = conn.recv(4 - len(data))
        if not chunk:
            sys.stderr.write("forkclient: the fork server went away\n")
            os._exit(70)
        data += chunk
    value: int = struct.unpack("!i", data)[0]
    return value


def main() -> None:
    path, argv = sys.argv[1], sys.argv[2:]
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(path)
    body = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    data = struct.pack("!I", len(body)) + body
    sent = conn.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
    conn.sendall(data[sent:])
    pid = _recv_int(conn)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: os.kill(pid, number))
    code = _recv_int(conn)
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)


if __name__ == "__main__":
    main()
