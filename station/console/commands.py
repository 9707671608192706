"""The console's commands: one registry, one help text per command (`help` and docs/console.md
show the same words). Handlers never touch hardware or the store themselves: they run
controller methods on the controller loop (`loop.call_sync`) and format the answer."""

from __future__ import annotations

import json
import math
import queue
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import MAKER, MODEL, __version__
from .. import config as station_config
from ..config import ConfigError
from ..domain import Mode, ServiceResult
from ..events import Event, SensorChanged
from ..loop import Timer
from ..ports import Sensor
from ..records import iso
from ..reports import sensor_report, station_status
from ..service_jobs import MAX_JOG, MAX_PRIME
from ..store import AttemptRecord
from . import protocol as P
from .access import Session, hash_pin, verify_pin

if TYPE_CHECKING:
    from ..controller import Controller

PIN_KEY = "console.pin"
SERVICE_TIMEOUT_S = 60.0
MAX_WATCH_S = 3600
STREAM_BACKLOG = 1000  # lines a live view keeps for a client that reads slowly; more are dropped
NAME_WIDTH = 16  # the name column of `sensors`


class CommandError(Exception):
    """Answered as `ERR <code> <message>` (after any `lines` the command produced)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.lines: list[str] = []


@dataclass
class Reply:
    lines: list[str] = field(default_factory=list)
    ok_text: str = ""


@dataclass(frozen=True)
class Command:
    name: str
    handler: Callable[[Context, list[str]], Reply | str]
    usage: str
    help: str
    protected: bool = False

    @property
    def query(self) -> bool:
        return self.name.endswith("?")


@dataclass
class Context:
    """What a handler can reach: the controller (through its loop), the session, the port."""

    controller: Controller
    session: Session
    errors: P.ErrorQueue
    write: Callable[[str], None]  # for commands that stream lines as they happen (sensors N)

    def call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        try:
            return self.controller.loop.call_sync(fn, timeout)
        except TimeoutError:
            raise CommandError(P.EXECUTION_ERROR, "the controller did not answer in time") from None

    def service(self, start: Callable[[Callable[[ServiceResult], None]], None]) -> ServiceResult:
        """Start a maintenance action on the loop and wait for its result here, not there."""
        done = threading.Event()
        box: list[ServiceResult] = []

        def finish(result: ServiceResult) -> None:
            box.append(result)
            done.set()

        self.call(lambda: start(finish))
        if not done.wait(SERVICE_TIMEOUT_S):
            raise CommandError(P.EXECUTION_ERROR, "the action did not finish in time")
        return box[0]

    @property
    def source(self) -> str:
        return f"console:{self.session.port}"


REGISTRY: dict[str, Command] = {}


Handler = Callable[["Context", list[str]], Reply | str]


def register(name: str, usage: str, help: str, *, protected: bool = False) -> Callable[[Handler], Handler]:
    """`@register("jog", "jog <positions>", "...")`: one way to add a console command."""

    def deco(fn: Handler) -> Handler:
        REGISTRY[name] = Command(name, fn, usage, help, protected)
        return fn

    return deco


def lookup(words: list[str], registry: dict[str, Command] | None = None) -> tuple[Command | None, list[str]]:
    """Two-word commands (`fault clear`) first, then one word; case-insensitive."""
    registry = REGISTRY if registry is None else registry
    lowered = [w.lower() for w in words]
    if len(words) >= 2 and f"{lowered[0]} {lowered[1]}" in registry:
        return registry[f"{lowered[0]} {lowered[1]}"], words[2:]
    return registry.get(lowered[0]), words[1:]


def int_arg(args: list[str], i: int, name: str, lo: int, hi: int, default: int | None = None) -> int:
    if len(args) <= i:
        if default is None:
            raise CommandError(P.MISSING_PARAMETER, f"Missing parameter; give {name} ({lo}-{hi})")
        return default
    try:
        value = int(args[i])
    except ValueError:
        raise CommandError(
            P.DATA_OUT_OF_RANGE, f"Data out of range; {name} must be a whole number {lo}-{hi}, not {args[i]!r}"
        ) from None
    if not lo <= value <= hi:
        raise CommandError(P.DATA_OUT_OF_RANGE, f"Data out of range; {name} must be {lo}-{hi}, not {value}")
    return value


def no_args(args: list[str], usage: str) -> None:
    if args:
        raise CommandError(P.SYNTAX_ERROR, f"Syntax error; usage: {usage}")


def n_args(args: list[str], n: int, usage: str) -> None:
    """Exactly `n` arguments: fewer is -109 (missing parameter), more is -102."""
    if len(args) < n:
        raise CommandError(P.MISSING_PARAMETER, f"Missing parameter; usage: {usage}")
    if len(args) > n:
        raise CommandError(P.SYNTAX_ERROR, f"Syntax error; usage: {usage}")


@dataclass
class Streamed:
    lines: int = 0
    dropped: int = 0

    def ok_text(self, what: str, seconds: int) -> str:
        lost = f"; {self.dropped} more dropped (the client read too slowly)" if self.dropped else ""
        return f"{self.lines} {what} in {seconds} s{lost}"


def stream(ctx: Context, seconds: int, line_for: Callable[[Event], str | None]) -> Streamed:
    """Write a line for each event `line_for` formats (None: not shown) as it happens, for
    `seconds` of the station's own time. The listener runs on the controller loop and only
    queues (a client that stops reading never holds the controller up, and at most
    STREAM_BACKLOG lines wait for it); this, the port's thread, does the writing."""
    pending: queue.SimpleQueue[str | None] = queue.SimpleQueue()  # None: the time is up
    counts = Streamed()
    c = ctx.controller

    def on_event(event: Event) -> None:
        line = line_for(event)
        if line is None:
            return
        if pending.qsize() >= STREAM_BACKLOG:
            counts.dropped += 1
        else:
            pending.put(line)

    def end() -> None:
        c.events.unsubscribe(on_event)  # on the loop: nothing more arrives after the end mark
        pending.put(None)

    def start() -> Timer:
        c.events.subscribe(on_event)
        return c.loop.call_later(seconds, end)

    timer: Timer = ctx.call(start)
    # A loop that stopped never ends the stream: give up after a while. With no loop thread
    # (call_sync ran inline: tests driving the loop themselves) the station's time stands
    # still meanwhile, so the view lasts `seconds` of real time.
    inline = c.loop.thread is None or c.loop.thread is threading.current_thread()
    give_up = time.monotonic() + (seconds if inline else 2 * seconds + 10.0)
    try:
        while (left := give_up - time.monotonic()) > 0:
            try:
                line = pending.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if line is None:
                break
            ctx.write(line)
            counts.lines += 1
    finally:
        if timer.pending:  # ended without the end mark (client gone, loop stopped): stop listening
            timer.cancel()
            c.loop.post(lambda: c.events.unsubscribe(on_event))
    return counts


def service_reply(result: ServiceResult) -> Reply:
    if result.ok:
        return Reply(result.lines)
    # refused before anything happened (state, arguments) vs. failed on the way (hardware)
    err = CommandError(P.HARDWARE_ERROR if result.lines else P.SETTINGS_CONFLICT, result.error or "failed")
    err.lines = result.lines
    raise err


def _iso(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


# ====================================================================== IEEE 488.2 / SCPI
@register("*idn?", "*IDN?", "Identify: maker, model, serial number, firmware version.")
def idn(ctx: Context, args: list[str]) -> str:
    serial = ctx.controller.config.station.serial_number
    return f"{MAKER},{MODEL},{serial},{__version__}"


@register(
    "*rst",
    "*RST",
    "Abort whatever is running, safely, back to ready. A clean in progress is "
    "recorded as interrupted. Does not clear a fault.",
    protected=True,
)
def rst(ctx: Context, args: list[str]) -> Reply:
    return service_reply(ctx.call(lambda: ctx.controller.request_reset(ctx.source)))


@register("*cls", "*CLS", "Clear the error queue.")
def cls(ctx: Context, args: list[str]) -> Reply:
    ctx.errors.clear()
    return Reply()


@register("*opc?", "*OPC?", "Operation complete: answers 1 once every earlier command has finished.")
def opc(ctx: Context, args: list[str]) -> str:
    return "1"


@register("syst:err?", "SYST:ERR?", 'Oldest error from the queue as <code>,"<message>"; 0,"No error" when empty.')
def syst_err(ctx: Context, args: list[str]) -> str:
    return P.scpi_error(*ctx.errors.pop())


@register(
    "stat?",
    "STAT?",
    'Status as one line of JSON: {"schema":1,"kind":"status","state":...,"mode":...,"cassette":...,'
    '"ribbon_remaining":...,"cleans_remaining":...,"fluid_drops_left":...,"fluid_low":...,"fault":...}.',
)
def stat(ctx: Context, args: list[str]) -> str:
    return json.dumps(ctx.call(lambda: station_status(ctx.controller)).to_json(), separators=(",", ":"))


# ====================================================================== people
@register("help", "help [command]", "List the commands, or explain one.")
def help_(ctx: Context, args: list[str]) -> Reply:
    if args:
        cmd, _ = lookup(args)
        if cmd is None:
            raise CommandError(P.UNDEFINED_HEADER, f"Undefined header; no command {' '.join(args)!r}")
        lock = " (needs login)" if cmd.protected else ""
        return Reply([f"{cmd.usage}{lock}", f"  {cmd.help}"])
    lines = [
        f"  {c.usage:<28} {c.help.split('. ')[0].rstrip('.')}{' *' if c.protected else ''}" for c in REGISTRY.values()
    ]
    return Reply(["Commands (* needs login; `help <command>` for more):", *lines])


@register("status", "status", "The station's state, mode, cassette, fluid and fault, for people.")
def status(ctx: Context, args: list[str]) -> Reply:
    s, detail = ctx.call(lambda: (station_status(ctx.controller), ctx.controller.faults.detail))
    lines = [f"state:    {s.state}", f"mode:     {s.mode.value}"]
    if s.cassette:
        lines.append(f"cassette: {s.cassette.value}, {s.ribbon_remaining} positions ({s.cleans_remaining} cleans) left")
    else:
        lines.append("cassette: none fitted")
    lines.append(f"fluid:    {s.fluid_drops_left} drops left{' (LOW switch)' if s.fluid_low else ''}")
    if s.fault:
        lines.append(f"fault:    {s.fault.value}: {detail}")
    lines.append(f"login:    {'maintenance' if ctx.session.logged_in else 'not logged in'} on {ctx.session.port}")
    return Reply(lines)


@register(
    "sensors",
    "sensors [seconds]",
    "Every input now (the wheel's index sensor included), then the outputs a technician wants to "
    "see (stepper enabled, pump); with seconds (1-60), also each input change as it happens for that "
    "long (a live view; the index's pulses show in `watch` as wheel moves).",
)
def sensors(ctx: Context, args: list[str]) -> Reply:
    seconds = int_arg(args, 0, "seconds", 1, 60, default=0) if args else 0
    snapshot = ctx.call(lambda: sensor_report(ctx.controller))
    lines = [f"{name:<{NAME_WIDTH}} {'active' if on else '-'}" for name, on in snapshot.items()]
    lines += [f"{s.value:<{NAME_WIDTH}} not fitted" for s in Sensor if s.value not in snapshot]
    if not seconds:
        return Reply(lines)
    for line in lines:
        ctx.write(line)

    def change(event: Event) -> str | None:
        if not isinstance(event, SensorChanged):
            return None
        return f"{event.t:10.3f} {event.sensor.value:<{NAME_WIDTH}} {'active' if event.active else '-'}"

    return Reply(ok_text=stream(ctx, seconds, change).ok_text("changes", seconds))


@register(
    "watch",
    "watch [seconds]",
    f"Stream the station's events as they happen for seconds (1-{MAX_WATCH_S}, default 60), then OK. "
    "One line per event, `<time> <kind> <JSON>`: the time in UTC (ISO 8601), the kind, the event's own "
    "JSON (with `schema` and `kind`). State changes, attempts and their results, wheel moves, drops, "
    "faults, warnings, maintenance; input changes are `sensors <seconds>`.",
)
def watch(ctx: Context, args: list[str]) -> Reply:
    seconds = int_arg(args, 0, "seconds", 1, MAX_WATCH_S, default=60)
    if len(args) > 1:
        raise CommandError(P.SYNTAX_ERROR, "Syntax error; usage: watch [seconds]")
    wall = ctx.controller.wall

    def line(event: Event) -> str | None:
        if isinstance(event, SensorChanged):
            return None
        return f"{iso(wall())} {event.kind} {json.dumps(event.to_json(), separators=(',', ':'))}"

    return Reply(ok_text=stream(ctx, seconds, line).ok_text("events", seconds))


@register("counters", "counters", "Clean attempts by result, ribbon and fluid left.")
def counters(ctx: Context, args: list[str]) -> Reply:
    c = ctx.call(ctx.controller.consumables.counters)
    lines = ["attempts: " + ", ".join(f"{k} {v}" for k, v in c.attempts.items())]
    for cas in c.cassettes:
        lines.append(
            f"cassette #{cas.id} {cas.type.value}{' (fitted)' if cas.id == c.fitted_id else ''}: "
            f"{cas.used} of {cas.capacity} positions used"
        )
    lines.append(f"cassettes declared: {c.cassettes_ever} (history: station records --cassettes)")
    lines.append(f"fluid: {c.fluid_used} of {c.fluid_capacity} drops used since the last refill")
    return Reply(lines)


@register("log", "log [N]", "The last N clean records (default 10, at most 100), newest first.")
def log_(ctx: Context, args: list[str]) -> Reply:
    n = int_arg(args, 0, "N", 1, 100, default=10)
    rows = ctx.call(lambda: ctx.controller.store.attempts(limit=n))
    lines = [
        f"#{r.id:<5} {_iso(r.started_at)} {r.outcome or 'open':<11} {r.mode:<3} {r.gender or '-':<7} "
        f"pos {r.positions} drops {r.drops}{f' pass {r.pass_s:.2f}s' if r.pass_s else ''}"
        f"{'  ' + r.reason if r.reason else ''}{_traced(r)}"
        for r in rows
    ]
    return Reply(lines or ["no clean records yet"])


def _traced(r: AttemptRecord) -> str:
    """What the record is tied to, when known: connector, operator, cassette label."""
    parts = [f"{name} {value}" for name, value in (("connector", r.connector), ("operator", r.operator),
             ("cassette", r.cassette_label)) if value]  # fmt: skip
    return "  [" + ", ".join(parts) + "]" if parts else ""


@register("audit", "audit [N]", "The last N maintenance and fault records (default 10, at most 100).")
def audit(ctx: Context, args: list[str]) -> Reply:
    n = int_arg(args, 0, "N", 1, 100, default=10)
    rows = ctx.call(lambda: [dict(r) for r in ctx.controller.store.audit_log(n)])
    return Reply(
        [f"{_iso(r['t'])} {r['kind']:<11} {r['action']:<14} {r['source']:<16} {r['detail']}" for r in rows]
        or ["no audit records yet"]
    )


@register("mode", "mode", "Show the cleaning mode and where it comes from (panel switch or console).")
def mode(ctx: Context, args: list[str]) -> Reply:
    no_args(args, "mode  (to set it: mode set dry|wet|switch)")
    value, override = ctx.call(lambda: (ctx.controller.mode.current().value, ctx.controller.mode.override))
    return Reply([f"mode {value} ({'set on the console' if override else 'panel switch'})"])


@register(
    "mode set",
    "mode set dry|wet|switch",
    "Set the cleaning mode from the console, overriding the "
    "panel's switch (`switch` hands it back to the panel). Takes effect from the next clean, "
    "except that a clean under way never gets a drop once the mode is dry.",
    protected=True,
)
def mode_set(ctx: Context, args: list[str]) -> Reply:
    n_args(args, 1, "mode set dry|wet|switch")
    choice = args[0].lower()
    if choice not in ("dry", "wet", "switch"):
        raise CommandError(P.DATA_OUT_OF_RANGE, "Data out of range; mode set takes dry, wet or switch")
    value = None if choice == "switch" else Mode(choice)
    return service_reply(ctx.call(lambda: ctx.controller.mode.set(value, ctx.source)))


# ====================================================================== access
@register(
    "login",
    "login <PIN>",
    "Log in for maintenance (moving hardware, configuration, counters, "
    "faults). Failed attempts lock the port out for growing times; an idle session logs out.",
)
def login(ctx: Context, args: list[str]) -> Reply:
    s = ctx.session
    wait = s.lockout.remaining()
    if wait > 0:  # whole seconds, rounded up: never "0 s" while it still refuses
        raise CommandError(
            P.ACCESS_DENIED, f"Command protected; locked out for {math.ceil(wait)} s after failed logins"
        )
    n_args(args, 1, "login <PIN>")
    stored = ctx.call(lambda: ctx.controller.store.setting(PIN_KEY))
    if stored is None:
        where = ctx.controller.store.path.rsplit("/", 1)[0]
        raise CommandError(
            P.ACCESS_DENIED,
            f"Command protected; no maintenance PIN is set: run `station pin set --state-dir {where}` on the station",
        )
    if not verify_pin(args[0], stored):
        s.lockout.failed()
        ctx.call(lambda: ctx.controller.store.audit("access", "login_failed", ctx.controller.wall(), source=ctx.source))
        raise CommandError(P.ACCESS_DENIED, "Command protected; wrong PIN")
    s.lockout.succeeded()
    s.logged_in = True
    ctx.call(lambda: ctx.controller.store.audit("access", "login", ctx.controller.wall(), source=ctx.source))
    return Reply(ok_text=f"logged in; idle sessions log out after {s.idle_logout_s:.0f} s")


@register("logout", "logout", "End the maintenance session.")
def logout(ctx: Context, args: list[str]) -> Reply:
    was = ctx.session.logged_in
    ctx.session.logged_in = False
    if was:
        ctx.call(lambda: ctx.controller.store.audit("access", "logout", ctx.controller.wall(), source=ctx.source))
    return Reply(ok_text="logged out")


@register("pin set", "pin set <new PIN>", "Change the maintenance PIN (stored only as a salted hash).", protected=True)
def pin_set(ctx: Context, args: list[str]) -> Reply:
    n_args(args, 1, "pin set <new PIN>")
    try:
        hashed = hash_pin(args[0])
    except ValueError as exc:
        raise CommandError(P.DATA_OUT_OF_RANGE, f"Data out of range; {exc}") from None
    ctx.call(lambda: ctx.controller.store.set_setting(PIN_KEY, hashed, ctx.controller.wall(), source=ctx.source))
    return Reply(ok_text="PIN changed")


# ====================================================================== hardware
@register(
    "jog",
    "jog <positions>",
    f"Advance the wheel 1-{MAX_JOG} positions, each confirmed by the index "
    "sensor. Uses ribbon (booked first). Only when ready with the guide empty.",
    protected=True,
)
def jog(ctx: Context, args: list[str]) -> Reply:
    n = int_arg(args, 0, "positions", 1, MAX_JOG)
    return service_reply(ctx.service(lambda done: ctx.controller.jobs.jog(n, ctx.source, done)))


@register(
    "prime",
    "prime <drops>",
    f"Pump 1-{MAX_PRIME} drops to fill the fluid line. Only when ready with the guide empty.",
    protected=True,
)
def prime(ctx: Context, args: list[str]) -> Reply:
    n = int_arg(args, 0, "drops", 1, MAX_PRIME)
    return service_reply(ctx.service(lambda done: ctx.controller.jobs.prime(n, ctx.source, done)))


@register(
    "selftest",
    "selftest",
    "Exercise each part and report PASS/FAIL per part: sensors at rest, wheel "
    "(one position), pump (one drop; not checked without a drop sensor), then the lights one at a time and "
    "a beep for you to see and hear.",
    protected=True,
)
def selftest(ctx: Context, args: list[str]) -> Reply:
    no_args(args, "selftest")
    return service_reply(ctx.service(lambda done: ctx.controller.jobs.selftest(ctx.source, done)))


@register(
    "fault?",
    "FAULT?",
    "The current fault as `<code>: <cause>; <next step>` (`no_cassette: the cradle is empty; fit a cassette "
    "(the fault clears by itself)`), or `none`.",
)
def fault_q(ctx: Context, args: list[str]) -> str:
    code, detail = ctx.call(lambda: (ctx.controller.faults.code, ctx.controller.faults.detail))
    return "none" if code is None else f"{code.value}: {detail}"


@register(
    "fault clear",
    "fault clear",
    "Clear the fault, only when its cause is gone: a sensed cause (cassette, "
    "gates, storage) must read right again; a jam cannot be sensed at rest, so clearing it means "
    "the wheel was freed and the next advance checks it again.",
    protected=True,
)
def fault_clear(ctx: Context, args: list[str]) -> Reply:
    return service_reply(ctx.call(lambda: ctx.controller.request_fault_clear(ctx.source)))


@register("cassette", "cassette", "The fitted cassette: type and ribbon left.")
def cassette(ctx: Context, args: list[str]) -> Reply:
    s = ctx.call(lambda: station_status(ctx.controller))
    if not s.cassette:
        return Reply(["no cassette fitted"])
    return Reply([f"{s.cassette.value}: {s.ribbon_remaining} positions ({s.cleans_remaining} cleans) left"])


@register(
    "cassette new",
    "cassette new",
    "Declare the fitted cassette new: its count starts again. Only for "
    "a cassette that really is new: without labels the station cannot tell cassettes of one type apart "
    "(with labelled cassettes, scan the new one's label instead).",
    protected=True,
)
def cassette_new(ctx: Context, args: list[str]) -> Reply:
    def act() -> ServiceResult:
        err = ctx.controller.jobs.refusal(need_cassette=True) or ctx.controller.consumables.labelled_refusal()
        if err:
            return ServiceResult(False, error=err)
        new = ctx.controller.consumables.declare_new(ctx.source)
        return ServiceResult(True, [f"new {new.type.value} cassette: {new.remaining} positions"])

    return service_reply(ctx.call(act))


@register("fluid", "fluid", "Fluid left in the reservoir (count since the last refill, and the low switch).")
def fluid(ctx: Context, args: list[str]) -> Reply:
    s = ctx.call(lambda: station_status(ctx.controller))
    return Reply([f"{s.fluid_drops_left} drops left{'; LOW switch active' if s.fluid_low else ''}"])


@register(
    "fluid refill",
    "fluid refill",
    "Record that the reservoir was refilled: the drop count starts again. The station sees a refill on its "
    "fluid-low switch by itself; this is for one it cannot see (made while it was off, or never low).",
    protected=True,
)
def fluid_refill(ctx: Context, args: list[str]) -> Reply:
    ctx.call(lambda: ctx.controller.consumables.refill(ctx.source))
    return Reply(ok_text="refill recorded")


# ====================================================================== configuration
def config_text(config: station_config.Config, section: str | None = None) -> str:
    """`config show [section]` on the console and the command line: the configuration as TOML
    with a comment per key, all of it or one section's block. ValueError names the sections."""
    text = station_config.dumps(config)
    if section is None:
        return text
    blocks = {b.splitlines()[0].strip("[]"): b for b in text.strip().split("\n\n")}
    if section.lower() not in blocks:
        raise ValueError(f"sections are {', '.join(blocks)}")
    return blocks[section.lower()] + "\n"


@register("config show", "config show [section]", "The effective configuration (TOML), all or one section.")
def config_show(ctx: Context, args: list[str]) -> Reply:
    try:
        text = config_text(ctx.controller.config, args[0] if args else None)
    except ValueError as exc:
        raise CommandError(P.DATA_OUT_OF_RANGE, f"Data out of range; {exc}") from None
    lines = [line for line in text.splitlines() if line]
    saved = ctx.call(ctx.controller.settings.saved_changes)
    changed = [
        name + (" (from the next start)" if station_config.needs_restart(*name.split(".", 1)) else "")
        for name in station_config.override_names(saved)
        if not args or name.startswith(f"{args[0].lower()}.")
    ]
    if changed:
        lines.append(f"# changed on the console (undo with config reset): {', '.join(changed)}")
    return Reply(lines)


@register(
    "config reset",
    "config reset <section.key>|all",
    "Drop a value changed with `config set` (or all "
    "of them): the configuration file's value counts again, at once where safe or from the next start. "
    "Only while ready.",
    protected=True,
)
def config_reset(ctx: Context, args: list[str]) -> Reply:
    n_args(args, 1, "config reset <section.key>|all")
    if args[0].lower() != "all" and "." not in args[0]:
        raise CommandError(P.SYNTAX_ERROR, "Syntax error; usage: config reset <section.key>|all")
    saved = ctx.call(ctx.controller.settings.saved_changes)
    changed = station_config.override_names(saved)
    names = changed if args[0].lower() == "all" else [args[0].lower()]
    if not changed or any(name not in changed for name in names):
        listed = ", ".join(changed) if changed else "none"
        raise CommandError(
            P.DATA_OUT_OF_RANGE, f"Data out of range; not changed on the console: {args[0]} (changed: {listed})"
        )
    result = ctx.call(lambda: ctx.controller.settings.reset(names, source=ctx.source, busy=ctx.controller.busy()))
    if not result.ok:
        raise CommandError(P.SETTINGS_CONFLICT, f"Settings conflict; {result.error}")
    return Reply(result.lines)


@register(
    "config set",
    "config set <section.key> <value>",
    "Change one value: validated, saved, and in "
    "effect at once where safe (swipe, guide pins, thresholds) or from the next start (pins, wheel, "
    "console); `config reset` undoes it. Only while ready.",
    protected=True,
)
def config_set(ctx: Context, args: list[str]) -> Reply:
    n_args(args, 2, "config set <section.key> <value>")
    if "." not in args[0]:
        raise CommandError(P.SYNTAX_ERROR, "Syntax error; usage: config set <section.key> <value>")
    section, _, key = args[0].lower().partition(".")
    try:
        value = tomllib.loads(f"v = {args[1]}")["v"]
    except tomllib.TOMLDecodeError:
        value = args[1]  # a bare word: a string
    try:  # the value on its own; how it fits the other values is the controller's check
        value = station_config.check_value(section, key, value)
    except ConfigError as exc:
        raise CommandError(P.DATA_OUT_OF_RANGE, f"Data out of range; {exc}") from None
    c = ctx.controller
    result = ctx.call(lambda: c.settings.change(section, key, value, source=ctx.source, busy=c.busy()))
    if not result.ok:
        raise CommandError(P.SETTINGS_CONFLICT, f"Settings conflict; {result.error}")
    result.lines.append("saved in the station database; it takes precedence over the configuration file")
    return Reply(result.lines)
