#!/usr/bin/python3
"""Loopback stand-ins for what notifiers talk to, recording what arrives.

receiver.py http PORT DIR: an HTTP server on 127.0.0.1:PORT. Each POST is
request N (from 1): its body goes to DIR/N.body, its headers to DIR/N.headers,
its path to DIR/N.path,
and "N" is appended to DIR/requests. It answers with the status code in
DIR/status (default 200).

receiver.py syslog SOCKET DIR: a datagram Unix socket (what logger -u writes
to); each datagram is appended to DIR/messages as one line.
"""
import http.server
import os
import socket
import sys
import threading

lock = threading.Lock()
count = 0


def record(directory, path, headers, body):
    global count
    with lock:
        count += 1
        number = count
        with open(os.path.join(directory, f"{number}.body"), "wb") as f:
            f.write(body)
        with open(os.path.join(directory, f"{number}.headers"), "w") as f:
            f.write(str(headers))
        with open(os.path.join(directory, f"{number}.path"), "w") as f:
            f.write(path + "\n")
        with open(os.path.join(directory, "requests"), "a") as f:
            f.write(f"{number}\n")


def serve_http(port, directory):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            record(directory, self.path, self.headers, body)
            try:
                with open(os.path.join(directory, "status")) as f:
                    status = int(f.read().strip())
            except FileNotFoundError:
                status = 200
            self.send_response(status)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.serve_forever()


def serve_syslog(path, directory):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    with open(os.path.join(directory, "ready"), "w"):
        pass
    while True:
        data = sock.recv(65536)
        with open(os.path.join(directory, "messages"), "ab") as f:
            f.write(data.rstrip(b"\n") + b"\n")


if __name__ == "__main__":
    if sys.argv[1] == "http":
        serve_http(int(sys.argv[2]), sys.argv[3])
    else:
        serve_syslog(sys.argv[2], sys.argv[3])
