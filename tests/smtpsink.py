"""A real SMTP server for tests: it accepts every message on 127.0.0.1 and keeps who it was for.

Just enough of RFC 5321 for smtplib (EHLO or HELO, MAIL, RCPT, DATA, RSET,
NOOP, QUIT), one thread per connection; no delivery anywhere.
"""

from __future__ import annotations

import socketserver
import threading


class SmtpSink:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []  # (RCPT TO addresses, the message)
        self.lock = threading.Lock()
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                def say(line: str) -> None:
                    self.wfile.write(line.encode() + b"\r\n")
                    self.wfile.flush()

                say("220 sink ESMTP")
                rcpt: list[str] = []
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    verb = line.decode(errors="replace").strip().split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        say("250-sink")
                        say("250 8BITMIME")
                    elif verb in ("HELO", "MAIL", "NOOP"):
                        say("250 OK")
                    elif verb == "RSET":
                        rcpt = []
                        say("250 OK")
                    elif verb == "RCPT":
                        address = line.decode(errors="replace").split(":", 1)[1].strip()
                        rcpt.append(address.strip("<>").split(">")[0])
                        say("250 OK")
                    elif verb == "DATA":
                        say("354 go on")
                        data = b""
                        while True:
                            chunk = self.rfile.readline()
                            if not chunk or chunk == b".\r\n":
                                break
                            data += chunk
                        with sink.lock:
                            sink.messages.append((rcpt, data))
                        rcpt = []
                        say("250 OK")
                    elif verb == "QUIT":
                        say("221 bye")
                        return
                    else:
                        say("502 not here")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="smtp-sink", daemon=True)

    def __enter__(self) -> SmtpSink:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def recipients(self) -> list[str]:
        with self.lock:
            return sorted(a for rcpt, _ in self.messages for a in rcpt)
