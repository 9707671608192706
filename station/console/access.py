"""Maintenance access: a PIN stored only as a salted scrypt hash, growing lock-outs, idle logout."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}  # ~16 MB, fast enough for a Pi Zero 2 W
MIN_PIN, MAX_PIN = 4, 32


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    """`scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`."""
    check_pin_format(pin)
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_pin(pin: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            pin.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(bytes.fromhex(digest))
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def check_pin_format(pin: str) -> None:
    if not (MIN_PIN <= len(pin) <= MAX_PIN) or not pin.isprintable() or " " in pin:
        raise ValueError(f"a PIN is {MIN_PIN} to {MAX_PIN} printable characters without spaces")


@dataclass
class Lockout:
    """Failed logins per port: after 3 failures each further try waits 2, 4, 8 ... up to 300 s."""

    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    locked_until: float = 0.0

    def remaining(self) -> float:
        return max(0.0, self.locked_until - self.clock())

    def failed(self) -> None:
        self.failures += 1
        if self.failures >= 3:
            self.locked_until = self.clock() + min(300.0, 2.0 ** (self.failures - 2))

    def succeeded(self) -> None:
        self.failures = 0
        self.locked_until = 0.0


@dataclass
class Session:
    """One console port's login state. Ports, not connections, are the unit, so a
    reconnect neither logs in nor escapes a lock-out."""

    port: str
    idle_logout_s: float
    clock: Callable[[], float] = time.monotonic
    logged_in: bool = False
    last_activity: float = 0.0
    lockout: Lockout = field(default_factory=Lockout)

    def __post_init__(self) -> None:
        if self.lockout.clock is time.monotonic:
            self.lockout.clock = self.clock

    def touch(self) -> bool:
        """Note activity; returns True if the session had idled out (and is now logged out)."""
        now = self.clock()
        idled = self.logged_in and now - self.last_activity > self.idle_logout_s
        if idled:
            self.logged_in = False
        self.last_activity = now
        return idled
