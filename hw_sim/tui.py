"""`station sim` at a terminal: a live view of the simulated bench, built on Textual.

What the operator sees (the lights and the buzzer as they are now, the connector, the gates,
the wheel and its ribbon, the reservoir, the cassette), what the station states (its status and
last result), and its announcements as a log. Commands are the simulator's actions
(hw_sim/actions.py), typed with history and completion, or one key for the common ones.

Threads: the bench runs paced to the wall clock on a thread of its own (`BenchThread`), as the
line-mode prompt runs it; the UI never touches the bench. Commands go to the bench through its
inbox; views of the bench (hw_sim/bench_view.py) and the station's events come back as Textual
messages, which are safe to post from any thread.

This is the only module that imports Textual: `station sim --plain`, `--demo`, `--scenario`,
`--headless` and `station run` never load it.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Footer, Input, RichLog, Static

from station.config import Config
from station.events import AttemptFinished, Event, FaultRaised, SensorChanged, SwipeNow, WarningRaised

from .actions import ACTIONS
from .bench import SimBench
from .bench_view import BenchView, Look, OutputWatch, Section, take_view
from .headless import serial_ports, sim_state_dir
from .interactive import COMMANDS, is_quit, reply
from .panel_words import PanelWatcher
from .report import describe

REFRESH_S = 0.1  # how often the view asks the bench for a fresh look


# ---------------------------------------------------------------------------------- the bench's thread
class BenchThread:
    """The bench paced to the wall clock on its own thread; `post` hands it a call to run
    between two of its events (a command), `stop` ends it and waits for it."""

    def __init__(self, bench: SimBench) -> None:
        self.bench = bench
        self.inbox: queue.Queue[Callable[[], None]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench", daemon=True)

    def _run(self) -> None:
        self.bench.run_paced(self._stop, self.inbox)

    def start(self) -> None:
        self._thread.start()

    def post(self, call: Callable[[], None]) -> None:
        self.inbox.put(call)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)


# ---------------------------------------------------------------------------------- messages
class Viewed(Message):
    """A fresh look at the bench, from the bench's thread."""

    def __init__(self, view: BenchView) -> None:
        super().__init__()
        self.view = view


class Heard(Message):
    """An announcement of the station, stamped with the station's wall clock and virtual time."""

    def __init__(self, event: Event, wall: float, t: float) -> None:
        super().__init__()
        self.event, self.wall, self.t = event, wall, t


class Said(Message):
    """The simulator's answer to a command."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


# ---------------------------------------------------------------------------------- widgets
LAMP_STYLE = {"green": "bold green", "amber": "bold yellow", "red": "bold red"}
SECTION_LOOK = {
    Section.FRESH: ("·", "dim"),
    Section.PASSED: ("-", "dim"),
    Section.OFFERED: ("o", "yellow"),
    Section.TOUCHED: ("#", "cyan"),
    Section.RETOUCHED: ("X", "bold red"),
}


def lamp_line(name: str, meaning: str, look: Look) -> Text:
    lit = look is not Look.OFF
    line = Text("  ")
    line.append("●" if lit else "○", style=LAMP_STYLE[name] if lit else "dim")
    line.append(f" {name:<6} {look.value:<14}", style=LAMP_STYLE[name] if lit else "")
    line.append(meaning, style="dim")
    return line


class ViewWidget(Static):
    """A part of the view drawn from a `BenchView`; redrawn only when its text changes (the view
    is refreshed ten times a second, the bench mostly stands still)."""

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id)
        self.text = Text()

    def show(self, v: BenchView) -> None:
        text = self.draw(v)
        if text != self.text:
            self.text = text
            self.update(text)

    def draw(self, v: BenchView) -> Text:
        raise NotImplementedError


class PanelWidget(ViewWidget):
    """The operator panel: three lights and the buzzer, as they are now."""

    def draw(self, v: BenchView) -> Text:
        text = Text("\n").join(
            [
                lamp_line("green", "ready", v.green),
                lamp_line("amber", "busy", v.amber),
                lamp_line("red", "fault", v.red),
            ]
        )
        sound = "sounding" if v.buzzer_on else "silent"
        beeps = f", {v.beeps} beep{'s' if v.beeps != 1 else ''} just now" if v.beeps else ""
        text.append(f"\n  ♪ buzzer {sound}{beeps}", style="bold magenta" if v.buzzer_on or v.beeps else "dim")
        text.append(f"\n\n  {v.words or 'looking...'}", style="bold" if v.words else "dim")
        return text


def sensed(on: bool, yes: str, no: str) -> Text:
    return Text(yes, style="bold") if on else Text(no, style="dim")


def ribbon_strip(v: BenchView) -> Text:
    r = v.ribbon
    if r is None:
        return Text("cradle empty: no cassette fitted", style="bold red")
    kind = "male MT" if r.male_mt else "standard"
    line = Text(f"{r.name} ({kind}): section {r.position} of {r.capacity} under the window\n")
    line.append(f"{r.first:>5} ")
    for i, section in enumerate(r.sections):
        char, style = SECTION_LOOK[section]
        under = r.first + i == r.position
        line.append(char, style=f"{style} reverse" if under else style)
    line.append("\n      legend: · fresh  - passed  o offered  # touched  X touched twice  (reversed: the window)")
    return line


class BenchWidget(ViewWidget):
    """The bench's physical state: the connector in the guide, the gates, wheel and ribbon,
    the reservoir (the world's truth, not the station's books)."""

    def draw(self, v: BenchView) -> Text:
        t = Text()
        t.append("guide      ")
        t.append(f"{v.connector} connector seated" if v.connector else "empty", style="bold" if v.connector else "dim")
        t.append("   presence ")
        t.append_text(sensed(v.connector_sensed, "sensed", "not sensed"))
        t.append("   guide pins L ")
        t.append_text(sensed(v.pin_left, "●", "○"))
        t.append(" R ")
        t.append_text(sensed(v.pin_right, "●", "○"))
        t.append("\ngates      A ")
        t.append_text(Text("blocked", style="bold yellow") if v.gate_a else Text("clear", style="dim"))
        t.append("   B ")
        t.append_text(Text("blocked", style="bold yellow") if v.gate_b else Text("clear", style="dim"))
        if v.stuck:
            t.append(f"   stuck: {', '.join(v.stuck)}", style="bold red")
        t.append("\nwheel      motor ")
        t.append_text(sensed(v.stepper_enabled, "enabled", "off"))
        t.append("   ")
        t.append_text(ribbon_strip(v))
        t.append(f"\nreservoir  {v.reservoir} of {v.reservoir_capacity} drops   float switch ")
        t.append_text(Text("LOW", style="bold red") if v.fluid_low else Text("ok", style="dim"))
        t.append("   pump ")
        t.append_text(sensed(v.pump_on, "on", "off"))
        wet = "wet-to-dry" if v.mode_wet else "dry"
        t.append(f"\nswitch     {wet}" + (f" (console set {v.console_mode})" if v.console_mode else ""))
        if v.faults:
            t.append(f"   injected: {', '.join(v.faults)}", style="bold red")
        return t


def result_text(last: AttemptFinished | None) -> Text:
    if last is None:
        return Text("none yet", style="dim")
    style = "bold green" if last.outcome == "cleaned" else "bold red"
    text = Text(last.outcome.value.upper(), style=style)
    who = " ".join(x.value for x in (last.gender, last.mode) if x)
    text.append(f" #{last.id} ({who}{f', pass {last.pass_s:.2f} s' if last.pass_s else ''})")
    if last.reason is not None:
        text.append(f": {last.reason.value}", style=style)
    return text


class StationWidget(ViewWidget):
    """What the station states about itself (its status, as `STAT?`) and its last result."""

    def draw(self, v: BenchView) -> Text:
        s = v.status
        t = Text("state       ")
        t.append(s.state, style="bold red" if s.state == "fault" else "bold")
        if s.fault is not None:
            t.append(f"  ({s.fault.value})", style="bold red")
        t.append(f"\nmode        {s.mode.value}")
        cassette = s.cassette.value if s.cassette else "none"
        cleans = "-" if s.cleans_remaining is None else str(s.cleans_remaining)
        t.append(f"\ncassette    {cassette}, cleans left {cleans}")
        t.append(f"\nfluid       {s.fluid_drops_left} drops left" + (" (low)" if s.fluid_low else ""))
        t.append("\nlast result ")
        t.append_text(result_text(v.last))
        clock = datetime.fromtimestamp(v.wall).strftime("%H:%M:%S")
        t.append(f"\nclock       {clock}  (virtual {v.t:.0f} s)", style="dim")
        if v.violations:
            t.append(f"\nrule violations seen by the judge: {v.violations}", style="bold red")
        return t


EVENT_STYLE: dict[type[Event], str] = {FaultRaised: "bold red", WarningRaised: "yellow", SwipeNow: "bold"}


class EventLog(RichLog):
    """The station's announcements with the station's wall clock and virtual time, and the
    commands typed with their answers."""

    def heard(self, event: Event, wall: float, t: float) -> None:
        text = describe(event) or f"{event.kind} {event.to_json()}"
        style = EVENT_STYLE.get(type(event), "")
        if isinstance(event, AttemptFinished):
            style = "bold green" if event.outcome == "cleaned" else "bold red"
        line = Text(f"{datetime.fromtimestamp(wall).strftime('%H:%M:%S')} {t:9.3f} s  ", style="dim")
        line.append(text, style=style)
        self.write(line)

    def said(self, text: str, style: str = "") -> None:
        if text.startswith("error:"):
            style = "red"
        self.write(Text(text, style=style))

    @property
    def plain_lines(self) -> list[str]:
        return [strip.text for strip in self.lines]


def completions(line: str) -> list[str]:
    """Whole-line candidates for the word being typed: an action's name, then the values its
    next parameter allows (as parse_line fills them, in order, or as `name=`)."""
    *head, word = line.split(" ")
    if not head:
        return [n for n in (*ACTIONS, *COMMANDS) if n.startswith(word.lower())]
    action = ACTIONS.get(head[0].lower())
    if action is None:
        return []
    prefix = " ".join(head) + " "
    params = {p.name: p for p in action.params}
    if "=" in word:
        key, _, value = word.partition("=")
        param = params.get(key)
        allowed = param.kind if param is not None and isinstance(param.kind, tuple) else ()
        return [f"{prefix}{key}={c}" for c in allowed if c.startswith(value)]
    position = len(head) - 1  # the parameter this word fills, as parse_line counts
    if position < len(action.params) and isinstance(action.params[position].kind, tuple):
        values = [prefix + c for c in action.params[position].kind if c.startswith(word)]
        if values:
            return values
    return [f"{prefix}{name}=" for name in params if name.startswith(word)]


class ActionSuggester(Suggester):
    """Shows the completion Tab would make, greyed after the cursor."""

    async def get_suggestion(self, value: str) -> str | None:
        found = completions(value)
        return found[0] if len(found) == 1 else None


class CommandLine(Input):
    """The command line: Enter runs, Up and Down walk the history, Tab completes, Esc hands the
    keys back to the panel shortcuts."""

    BINDINGS = [
        Binding("up", "history(-1)", "previous", show=False),
        Binding("down", "history(1)", "next", show=False),
        Binding("tab", "complete", "complete", show=False),
        Binding("escape", "leave", "keys", show=False),
    ]

    class Choices(Message):
        """Tab found several completions: show them."""

        def __init__(self, choices: list[str]) -> None:
            super().__init__()
            self.choices = choices

    def __init__(self) -> None:
        super().__init__(
            placeholder="type an action (Tab completes, Up recalls, Esc for keys): present female, swipe, help",
            suggester=ActionSuggester(use_cache=False),
            id="command",
        )
        self.history: list[str] = []
        self._recall = 0  # index into history while walking it; len(history) = the new line

    def remember(self, line: str) -> None:
        if line and (not self.history or self.history[-1] != line):
            self.history.append(line)
        self._recall = len(self.history)

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        self._recall = max(0, min(len(self.history), self._recall + step))
        self.value = self.history[self._recall] if self._recall < len(self.history) else ""
        self.cursor_position = len(self.value)

    def action_complete(self) -> None:
        found = completions(self.value)
        if not found:
            return
        if len(found) == 1:
            self.value = found[0] if found[0].endswith("=") else found[0] + " "
        else:
            common = found[0]
            for other in found[1:]:
                while not other.startswith(common):
                    common = common[:-1]
            if len(common) > len(self.value):
                self.value = common
            else:
                self.post_message(self.Choices(found))
        self.cursor_position = len(self.value)

    def action_leave(self) -> None:
        self.screen.set_focus(None)


# ---------------------------------------------------------------------------------- the application
class SimApp(App[None]):
    """The live view of one simulated bench. The app runs the bench's paced thread from mount
    to unmount; closing the bench stays with whoever built it."""

    TITLE = "MPO cleaning station: simulated bench"
    AUTO_FOCUS = None  # the panel keys work from the start; `:` goes to the command line
    CSS = """
    #top { height: auto; }
    PanelWidget { width: 44; height: auto; border: round $success; padding: 0 1; }
    StationWidget { width: 1fr; height: auto; border: round $primary; padding: 0 1; }
    BenchWidget { height: auto; border: round $secondary; padding: 0 1; }
    EventLog { height: 1fr; border: round $panel; }
    CommandLine { dock: bottom; margin-bottom: 1; }
    """
    BINDINGS = [
        Binding("p", "act('present female')", "present female"),
        Binding("m", "act('present male')", "present male"),
        Binding("s", "act('swipe')", "swipe"),
        Binding("r", "act('remove')", "remove"),
        Binding("w", "toggle_mode", "wet/dry"),
        Binding("b", "act('button')", "button"),
        Binding("l", "act('button 2.5')", "long press"),
        Binding("colon,slash", "command_line", "command"),
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
    ]

    def __init__(self, bench: SimBench, notes: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.bench = bench
        self.notes = notes
        self.runner = BenchThread(bench)
        self.view: BenchView | None = None
        self._asked = False  # a view is on its way
        self._watch: OutputWatch | None = None
        self._looks: PanelWatcher | None = None
        self._ask: Callable[[], None] = lambda: None  # takes a view, on the bench's thread

    def compose(self) -> ComposeResult:
        with Horizontal(id="top"):
            yield PanelWidget(id="panel")
            yield StationWidget(id="station")
        yield BenchWidget(id="bench")
        yield EventLog(id="log", max_lines=1000, wrap=True)
        yield CommandLine()
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#panel").border_title = "panel"
        self.query_one("#station").border_title = "station says"
        self.query_one("#bench").border_title = "bench"
        self.query_one("#log").border_title = "events"
        log = self.query_one(EventLog)
        for note in self.notes:
            log.said(note, "dim")
        log.said("keys: p present female, s swipe, r remove, w wet/dry, b button; `:` to type a command", "dim")
        # before the bench's thread starts, nothing runs on the bench: safe to attach here
        self._watch = watch = OutputWatch(self.bench)
        self._looks = looks = PanelWatcher(self.bench)

        def ask() -> None:  # on the bench's thread
            words = looks.current.words if looks.current is not None else None
            self.post_message(Viewed(replace(take_view(self.bench, watch), words=words)))

        self._ask = ask
        self.bench.controller.events.subscribe(self._heard)
        self.runner.start()
        self._ask_view()
        self.set_interval(REFRESH_S, self._ask_view)

    def _heard(self, event: Event) -> None:  # on the bench's thread
        if not isinstance(event, SensorChanged):  # edges are many; the bench view shows the lines
            self.post_message(Heard(event, self.bench.controller.wall(), self.bench.loop.now()))

    def _ask_view(self) -> None:
        if not self._asked:
            self._asked = True
            self.bench.loop.post(self._ask)

    def on_viewed(self, message: Viewed) -> None:
        self._asked = False
        self.view = message.view
        for widget in self.query(ViewWidget):  # none left once the app is closing
            widget.show(message.view)

    def on_heard(self, message: Heard) -> None:
        self.query_one(EventLog).heard(message.event, message.wall, message.t)

    def on_said(self, message: Said) -> None:
        self.query_one(EventLog).said(message.text)

    def on_command_line_choices(self, message: CommandLine.Choices) -> None:
        self.query_one(EventLog).said("  ".join(c.rsplit(" ", 1)[-1] for c in message.choices), "dim")

    def on_input_submitted(self, message: Input.Submitted) -> None:
        line = message.value.strip()
        command = self.query_one(CommandLine)
        command.remember(line)
        command.value = ""
        if line:
            self.run_line(line)

    # ------------------------------------------------------------------ commands
    def run_line(self, line: str | Callable[[], str]) -> None:
        """Run a typed line (or a line chosen on the bench's thread) as the prompt would."""
        if isinstance(line, str):
            if is_quit(line):
                self.action_quit_now()
                return
            self.query_one(EventLog).said(f"> {line}", "bold cyan")

        def call() -> None:  # on the bench's thread
            text = line if isinstance(line, str) else line()
            if not isinstance(line, str):
                self.post_message(Said(f"> {text}"))
            try:
                answer = reply(self.bench, text)
            except Exception as exc:  # a bug in an action must not end the bench's thread
                answer = f"error: {text}: {exc!r}"
            if answer is not None:
                self.post_message(Said(answer))

        self.runner.post(call)

    def action_act(self, line: str) -> None:
        self.run_line(line)

    def action_toggle_mode(self) -> None:
        world = self.bench.world
        assert world is not None
        self.run_line(lambda: "mode dry" if world.mode_wet else "mode wet")

    def action_command_line(self) -> None:
        self.query_one(CommandLine).focus()

    async def action_quit(self) -> None:
        self.action_quit_now()

    def action_quit_now(self) -> None:
        self._stop_bench()
        self.exit()

    def _stop_bench(self) -> None:
        """Stop the bench's thread, then let go of the bench (its events, its outputs)."""
        self.runner.stop()
        if self._watch is not None:
            self.bench.controller.events.unsubscribe(self._heard)
            if self._looks is not None:
                self._looks.detach()  # the taps let go in the reverse order of attaching
            self._watch.detach()
            self._watch = self._looks = None

    def on_unmount(self) -> None:
        self._stop_bench()


def run(config: Config | None, state_dir: str | Path | None) -> int:
    """`station sim` at a terminal: the bench (kept in the state directory) with its maintenance
    console on a pseudo-terminal, shown live until the person quits (q or Ctrl-C)."""
    directory = sim_state_dir(state_dir)
    world = {"state_file": directory / "sim-world.json"}
    with (
        SimBench(config, directory, wall_start=time.time(), world_options=world) as bench,
        serial_ports(bench, bench_port=False) as paths,
    ):
        notes = (
            f"state directory: {directory}",
            f"maintenance console: {sys.executable} -m serial.tools.miniterm --echo {paths['console']} 115200",
        )
        try:
            SimApp(bench, notes).run()
        except KeyboardInterrupt:
            pass
    return 0
