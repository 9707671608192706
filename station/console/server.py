"""Serving a command registry on a serial port (pyserial) and, optionally, on loopback TCP.

Each port has its own thread; commands reach the controller only through its loop, so a
slow, hostile or vanished client never blocks or slows the cleaning cycle. A serial device
that disappears (USB adapter unplugged) is reopened when it comes back.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

import serial

from . import inspection_commands, trace_commands  # noqa: F401  (each registers its commands: one module per feature)
from . import protocol as P
from .access import Lockout, Session
from .commands import REGISTRY, Command, CommandError, Context, lookup

if TYPE_CHECKING:
    from ..controller import Controller

log = logging.getLogger(__name__)


class SerialPort(Protocol):
    """What the console uses of an open pyserial port. Every pyserial port class has these, but
    `serial_for_url` is typed to return SerialBase, which leaves `in_waiting` to its subclasses."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1, /) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


class Dispatcher:
    """Lines in, reply lines out, with the framing of docs/design.md section 5.

    `make_context(write)` builds what handlers see; `session` is None for registries that
    need no login (the simulator's bench port)."""

    def __init__(
        self,
        registry: dict[str, Command],
        make_context: Callable[[Callable[[str], None], Session | None, P.ErrorQueue], object],
        session: Session | None,
        *,
        max_per_s: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.make_context = make_context
        self.session = session
        self.errors = P.ErrorQueue()
        self._rate = max_per_s
        self._tokens = max_per_s
        self._clock = clock
        self._last = clock()

    def _allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _error(self, query: bool, code: int, message: str, lines: list[str] | None = None) -> list[str]:
        self.errors.push(code, message)
        if query:
            return [P.err_line(code, message)]
        return [*(lines or []), P.err_line(code, message)]

    def handle(self, item: P.Line | P.BadLine, write: Callable[[str], None]) -> list[str]:
        if isinstance(item, P.BadLine):
            return self._error(False, item.code, item.message)
        text = item.text
        if not text:
            return []
        words = text.split()
        query = words[0].endswith("?")
        if not self._allow():
            return self._error(query, P.TOO_MANY, "System error; too many commands, slow down")
        cmd, args = lookup(words, self.registry)
        if cmd is None:
            return self._error(query, P.UNDEFINED_HEADER, f"Undefined header; unknown command {words[0]!r} (try help)")
        session = self.session
        if session is not None and session.touch() and not query:
            write("session idled out: logged out")  # a query's answer stays one line
        if cmd.protected and session is not None and not session.logged_in:
            return self._error(cmd.query, P.ACCESS_DENIED, f"Command protected; `{cmd.usage}` needs `login <PIN>`")
        ctx = self.make_context(write, session, self.errors)
        try:
            # The registry's handlers take the context its make_context builds; `Command` names
            # the console's Context only, so the simulator's bench registry cannot say so.
            result = cmd.handler(ctx, args)  # type: ignore[arg-type]
        except CommandError as exc:
            return self._error(cmd.query, exc.code, exc.message, exc.lines)
        except Exception as exc:  # a handler bug must not take the port down
            log.exception("console command %r failed", text)
            return self._error(cmd.query, P.EXECUTION_ERROR, f"Execution error; {type(exc).__name__}: {exc}")
        if cmd.query:
            return [str(result)]
        lines = list(result.lines) if not isinstance(result, str) else [result]
        ok_text = "" if isinstance(result, str) else result.ok_text
        return [*lines, f"OK {ok_text}".rstrip()]


def console_context(
    controller: Controller,
) -> Callable[[Callable[[str], None], Session | None, P.ErrorQueue], Context]:
    def make(write: Callable[[str], None], session: Session | None, errors: P.ErrorQueue) -> Context:
        assert session is not None, "the console's commands run in a login session"
        return Context(controller, session, errors, write)

    return make


class SerialPortServer:
    """Serves one serial device (or pyserial URL) on its own thread, reopening it if it vanishes."""

    def __init__(self, url: str, baud: int, make_dispatcher: Callable[[], Dispatcher], name: str = "serial") -> None:
        self.url = url
        self.baud = baud
        self.name = name
        self.dispatcher = make_dispatcher()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"console-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def _open(self) -> SerialPort | None:
        try:
            port = serial.serial_for_url(self.url, baudrate=self.baud, timeout=0.1, write_timeout=1.0)
            return cast(SerialPort, port)
        except (serial.SerialException, OSError, ValueError) as exc:
            log.debug("console port %s not available: %s", self.url, exc)
            return None

    def _run(self) -> None:
        reported = False
        while not self._stop.is_set():
            port = self._open()
            if port is None:
                if not reported:
                    log.warning("console port %s is not available; retrying every second", self.url)
                    reported = True
                self._stop.wait(1.0)
                continue
            reported = False
            self.connected.set()
            try:
                self._serve(port)
            except (serial.SerialException, OSError) as exc:
                log.warning("console port %s lost (%s); waiting for it to come back", self.url, exc)
            finally:
                self.connected.clear()
                if self.dispatcher.session is not None:
                    self.dispatcher.session.logged_in = False  # whoever plugs in next logs in again
                try:
                    port.close()
                except (serial.SerialException, OSError):
                    pass
            self._stop.wait(0.5)

    def _serve(self, port: SerialPort) -> None:
        buffer = P.LineBuffer()
        eol = [P.LF]  # the line end of the line being answered (its replies end the same way)

        def write(line: str) -> None:
            try:
                port.write((line + eol[0]).encode("utf-8", "replace"))
            except serial.SerialTimeoutException:
                log.warning("console client on %s is not reading; reply dropped", self.url)

        while not self._stop.is_set():
            data = port.read(max(1, min(port.in_waiting, 4096)))
            if not data:
                continue
            for item in buffer.feed(data):
                eol[0] = item.eol
                for line in self.dispatcher.handle(item, write):
                    write(line)


class TcpServer:
    """The console on 127.0.0.1:<port> only, for lab scripts (pyserial socket://, PyVISA
    TCPIP::127.0.0.1::<port>::SOCKET). Each connection has its own login; failed logins lock
    out the whole TCP port, so reconnecting does not help a guesser."""

    def __init__(self, port: int, make_dispatcher: Callable[[Lockout], Dispatcher], max_clients: int = 4) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(max_clients)
        self._sock.settimeout(0.5)
        self.port: int = self._sock.getsockname()[1]  # the one bound (port 0: any free one)
        self._make = make_dispatcher
        self._lockout = Lockout()
        self._stop = threading.Event()
        self._clients = threading.BoundedSemaphore(max_clients)

    def start(self) -> None:
        threading.Thread(target=self._accept, name="console-tcp", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._clients.acquire(blocking=False):
                conn.sendall(b"ERR -310 System error; too many console clients\n")
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), name="console-tcp-client", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        dispatcher = self._make(self._lockout)
        buffer = P.LineBuffer()
        conn.settimeout(1.0)
        eol = [P.LF]  # as on the serial port: replies end the way the line they answer ended

        def write(line: str) -> None:
            conn.sendall((line + eol[0]).encode("utf-8", "replace"))

        try:
            while not self._stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    return
                for item in buffer.feed(data):
                    eol[0] = item.eol
                    for line in dispatcher.handle(item, write):
                        write(line)
        except OSError:
            return  # client went away mid-reply
        finally:
            conn.close()
            self._clients.release()


class Console:
    """All console ports of a station."""

    def __init__(
        self,
        controller: Controller,
        *,
        serial_url: str | None,
        baud: int,
        tcp_port: int = 0,
        idle_logout_s: float = 300.0,
        max_per_s: float = 20.0,
        port_name: str | None = None,
    ) -> None:
        """`port_name` is the port as the client knows it, for `status` and the audit: by
        default the station's own device (`/dev/serial0` on the Pi); the simulator names the
        user end of its null-modem cable, the device a person attaches to."""
        self.controller = controller
        self.servers: list[SerialPortServer] = []
        self.tcp: TcpServer | None = None
        make_ctx = console_context(controller)
        if serial_url:
            session = Session(port_name or serial_url, idle_logout_s)
            self.servers.append(
                SerialPortServer(serial_url, baud, lambda: Dispatcher(REGISTRY, make_ctx, session, max_per_s=max_per_s))
            )
        if tcp_port:

            def make_tcp(lockout: Lockout) -> Dispatcher:
                session = Session(f"tcp:{tcp_port}", idle_logout_s, lockout=lockout)
                return Dispatcher(REGISTRY, make_ctx, session, max_per_s=max_per_s)

            self.tcp = TcpServer(tcp_port, make_tcp)

    def start(self) -> None:
        for server in self.servers:
            server.start()
        if self.tcp is not None:
            self.tcp.start()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self.tcp is not None:
            self.tcp.stop()
