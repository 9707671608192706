"""The outside auditor: reads the station's database file, read-only, and holds the books to the
physics of the bench.

It opens `station.db` with a `file:...?mode=ro` URI, as QA would open a copy of the Pi's state:
the station's database is in WAL mode, so every committed transaction is seen, nothing else.
It never looks at the firmware's memory or its announcements. What it reads:

- the ribbon books: the current cassette of each type, its capacity and positions used, and
  who declared it (the `cassette new` audit row: the panel, the console, or the station itself
  for the first cassette of a type);
- the fluid books: drops booked in all and at the last refill;
- the attempt records and the maintenance audit rows;
- the configuration in force: the file's, with the console changes the database keeps (those
  that need a restart as they were when this station started).

Its invariants (docs/reliability.md, "What the simulator judges"):

- ribbon (rules 1 and 6): for the physical cassette a count was begun on (a person declared it
  new with it fitted, or the count was first seen with it fitted), the books' positions left
  never exceed the count's start minus the positions the wheel physically moved since; a count
  restarted without a person's word (a declaration by the station, not the first of its type) is
  held to the physical baseline it replaced;
- fluid (rule 6): every drop that left the nozzle is booked, in all and since the last refill.

`state()` survives a power cut in the world file, so a new station is held to the same baselines.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from station.config import OVERRIDES_SETTING, Config, ConfigError, from_dict, needs_restart, to_dict, with_overrides

from .model import SimCassette

MAINTENANCE_ACTIONS = {"move": ("jog", "selftest"), "pump": ("prime", "selftest")}

# One read-only connection per database file in this process: the auditors of benches on the
# same state directory (a station abandoned at a power cut and the one started after it) share
# it, so abandoned benches hold no file descriptors of their own.
_CONNECTIONS: dict[Path, sqlite3.Connection] = {}


@dataclass
class Baseline:
    """Where a ribbon count began: on this physical cassette, at this position, with this many
    of the count's positions already used."""

    cassette: str
    capacity: int
    used: int
    position: int
    books_id: int


@dataclass(frozen=True)
class Books:
    """The current cassette of one type, as the books have it."""

    id: int
    capacity: int
    used: int

    @property
    def left(self) -> int:
        return max(0, self.capacity - self.used)


@dataclass(frozen=True)
class Record:
    """One attempt's record."""

    id: int
    outcome: str | None
    reason: str
    mode: str
    positions: int  # ribbon positions booked for it (the ledger)
    drops: int  # drops booked for it
    connector: str | None = None  # the connector and operator it is tied to (rule 9)
    operator: str | None = None


def cassette_type(male_mt: bool) -> str:
    return "male_mt" if male_mt else "standard"


class Auditor:
    """Reads `path` read-only; `problems` found are returned as text for the judge to file."""

    def __init__(self, path: str | Path, file_config: Config, drops_total: int, state: dict[str, Any] | None) -> None:
        self.path = Path(path).resolve()
        self.file_config = file_config
        self.unreadable: str | None = None  # why the file could not be read (checks then skip)
        self.paused = False  # while the station stops: its last close must find no reader
        self.stopped = False
        self._settings_text: str | None = None
        self.start_config = self._with_saved(self._setting_text(), file_config)
        self._config = self.start_config
        self.baselines: dict[str, Baseline] = {}
        self.seen: dict[str, int] = {}  # type -> the current books' id, last seen
        self.long_pressed = False  # a person long-pressed the button since the last panel declaration
        # cassette labels the bench's scanner read on the fitted cassette: label -> the positions its
        # ribbon had moved then (0: a fresh cassette)
        self.labels_read: dict[str, int] = {}
        fluid = self._fluid()
        books0 = fluid[0] if fluid else 0
        self.fluid = {"books0": books0, "phys0": drops_total, "refill_id": None, "refill_books": 0, "refill_phys": 0}
        self.cassettes_at_start = self._one("SELECT coalesce(max(id), 0) FROM cassettes") or 0
        if state:
            self.baselines = {t: Baseline(**b) for t, b in state.get("baselines", {}).items()}
            self.seen = {t: int(i) for t, i in state.get("seen", {}).items()}
            self.fluid.update(state.get("fluid", {}))
            self.long_pressed = bool(state.get("long_pressed"))
            self.labels_read = {str(k): int(v) for k, v in state.get("labels_read", {}).items()}
        else:
            for ctype in ("standard", "male_mt"):
                books = self.books(ctype)
                if books is not None:
                    self.seen[ctype] = books.id

    def state(self) -> dict[str, Any]:
        return {
            "baselines": {t: asdict(b) for t, b in self.baselines.items()},
            "seen": self.seen,
            "fluid": self.fluid,
            "long_pressed": self.long_pressed,
            "labels_read": self.labels_read,
        }

    # ------------------------------------------------------------------ reading
    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]] | None:
        if self.paused:
            return None
        try:
            db = _CONNECTIONS.get(self.path)
            if db is None:
                uri = self.path.as_uri() + "?mode=ro"
                if self.stopped and not Path(f"{self.path}-wal").exists():
                    uri += "&immutable=1"  # the station closed cleanly: all is in the file (store.py)
                db = _CONNECTIONS[self.path] = sqlite3.connect(
                    uri, uri=True, isolation_level=None, check_same_thread=False
                )
            return db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            self.unreadable = f"{type(exc).__name__}: {exc}"
            return None

    def select(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]] | None:
        """Rows of a read-only query (None: the file cannot be read now), for the judge's parts."""
        return self._rows(sql, args)

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        rows = self._rows(sql, args)
        return rows[0][0] if rows else None

    @property
    def _db(self) -> sqlite3.Connection | None:
        return _CONNECTIONS.get(self.path)

    def close(self) -> None:
        db = _CONNECTIONS.pop(self.path, None)
        if db is not None:
            db.close()

    def station_stopping(self) -> None:
        """Let go of the file while the station stops, so that its last close checkpoints as it
        would with nobody reading; `station_stopped` reads it again."""
        self.close()
        self.paused = True

    def station_stopped(self) -> None:
        self.paused, self.stopped = False, True

    def _setting_text(self) -> str | None:
        rows = self._rows("SELECT value FROM settings WHERE key = ?", (OVERRIDES_SETTING,))
        if rows is None:
            return self._settings_text  # unreadable now: the last known
        return str(rows[0][0]) if rows else None

    @staticmethod
    def _with_saved(text: str | None, base: Config) -> Config:
        if not text:
            return base
        try:
            return with_overrides(base, json.loads(text))
        except (ConfigError, ValueError):
            return base  # the station starts on the file alone then (station.app.build_station)

    def config(self) -> Config:
        """The configuration in force: console changes apply at once, but those that need a
        restart only as they were when this station started."""
        text = self._setting_text()
        if text == self._settings_text:
            return self._config
        self._settings_text = text
        now = self._with_saved(text, self.file_config)
        raw = to_dict(self.start_config)
        for section, values in to_dict(now).items():
            for key, value in values.items():
                if not needs_restart(section, key):
                    raw[section][key] = value
        try:
            self._config = from_dict(raw)
        except ConfigError:
            self._config = self.start_config
        return self._config

    def books(self, ctype: str) -> Books | None:
        rows = self._rows(
            # a labelled cassette counts as fitted only once its label was scanned (its open fit)
            "SELECT id, capacity, used FROM cassettes c WHERE type = ? AND retired_at IS NULL AND (label IS NULL OR"
            " EXISTS (SELECT 1 FROM cassette_fits f WHERE f.cassette_id = c.id AND f.removed_at IS NULL))"
            " ORDER BY id DESC LIMIT 1",
            (ctype,),
        )
        return Books(*rows[0]) if rows else None

    def attempts_max(self) -> int | None:
        return self._one("SELECT coalesce(max(id), 0) FROM attempts")

    def audit_max(self) -> int | None:
        return self._one("SELECT coalesce(max(id), 0) FROM audit")

    def records(self, after: int, upto: int | None) -> list[Record] | None:
        rows = self._rows(
            "SELECT id, outcome, reason, mode,"
            " (SELECT coalesce(sum(positions), 0) FROM ribbon r WHERE r.attempt_id = a.id),"
            " (SELECT count(*) FROM drops d WHERE d.attempt_id = a.id), a.connector, a.operator"
            " FROM attempts a WHERE id > ? AND id <= ? ORDER BY id",
            (after, upto if upto is not None else 2**62),
        )
        return None if rows is None else [Record(*r) for r in rows]

    def maintenance_audited(self, kind: str, since: int) -> bool | None:
        """Is there an audit row of a maintenance action that does this (`move`, `pump`) after
        audit row `since`?"""
        actions = MAINTENANCE_ACTIONS[kind]
        n = self._one(
            "SELECT count(*) FROM audit WHERE id > ? AND kind = 'maintenance' AND action IN (?, ?)", (since, *actions)
        )
        return None if n is None else n > 0

    def fault_clear_audited(self) -> bool | None:
        """Is a panel fault_clear audited after the last fault the station audited?"""
        rows = self._rows(
            "SELECT (SELECT coalesce(max(id), 0) FROM audit WHERE kind = 'maintenance' AND action = 'fault_clear' "
            "AND source = 'panel') > (SELECT coalesce(max(id), 0) FROM audit WHERE kind = 'fault')"
        )
        return None if not rows else bool(rows[0][0])

    def _fluid(self) -> tuple[int, int | None, int] | None:
        """(drops booked in all, the last refill's id, drops booked at it)."""
        total = self._one("SELECT n FROM drop_tally WHERE id = 1")
        if total is None:
            return None
        last = self._rows("SELECT id, drop_total FROM refills ORDER BY id DESC LIMIT 1")
        refill_id, at_refill = last[0] if last else (None, 0)
        return int(total), refill_id, int(at_refill)

    # ------------------------------------------------------------------ the ribbon books
    def _declared_by_a_person(self, books: Books, ctype: str) -> bool:
        """Was this count begun by a person's word (or is it the first of its type, which the
        station takes as new)? A panel declaration needs a long press the bench saw (one long
        press, one declaration); a console declaration is taken at its audit row's word (the
        simulator does not see the console)."""
        rows = self._rows(
            "SELECT source, detail FROM audit WHERE kind = 'cassette' AND action = 'new' ORDER BY id DESC"
        )
        for source, detail in rows or []:
            try:
                d = json.loads(detail)
            except ValueError:
                continue
            if d.get("id") != books.id:
                continue
            if d.get("label") is not None:  # a new labelled count: its label, read on a fresh cassette
                return self.labels_read.get(str(d["label"])) == 0
            if source.startswith("console"):
                return True
            if source == "panel":
                pressed, self.long_pressed = self.long_pressed, False
                return pressed
            first = self._one("SELECT count(*) FROM cassettes WHERE type = ?", (ctype,)) == 1
            return source == "station" and str(d.get("note", "")).startswith("first fit") and first
        return False

    def _count(self, fitted: SimCassette) -> tuple[Books, Baseline] | None:
        """The books of the fitted cassette's type and the physical baseline their count is held
        to (None: no books yet, or the count began on another physical cassette of the type)."""
        ctype = cassette_type(fitted.male_mt)
        books = self.books(ctype)
        if books is None:
            return None
        seen = self.seen.get(ctype)
        if seen != books.id:
            watched = seen is not None or books.id > self.cassettes_at_start
            self.seen[ctype] = books.id
            if watched and self._declared_by_a_person(books, ctype):
                self.baselines[ctype] = Baseline(fitted.name, books.capacity, 0, fitted.position, books.id)
            elif ctype not in self.baselines:
                self.baselines[ctype] = Baseline(fitted.name, books.capacity, books.used, fitted.position, books.id)
        elif ctype not in self.baselines:
            self.baselines[ctype] = Baseline(fitted.name, books.capacity, books.used, fitted.position, books.id)
        b = self.baselines[ctype]
        if b.cassette != fitted.name:
            return None  # another physical cassette of the type: the books cannot know it is not the same
        return books, b

    def ribbon(self, fitted: SimCassette | None) -> str | None:
        """The books of the fitted cassette's type against its ribbon (None: all is well)."""
        found = self._count(fitted) if fitted is not None else None
        if fitted is None or found is None:
            return None
        books, b = found
        moved = fitted.position - b.position
        honest = b.capacity - b.used - moved
        if books.left > honest:
            return (
                f"cassette '{fitted.name}': the books (#{books.id}) give {books.left} positions left, but the "
                f"wheel moved {moved} since its count began (#{b.books_id}, {b.capacity - b.used} left then): "
                f"at most {honest}"
            )
        return None

    def ribbon_left(self, fitted: SimCassette) -> tuple[int, int] | None:
        """The most positions anyone may say are left on the fitted cassette: its count's start
        minus the positions the wheel physically moved since (never below 0), with the positions
        left when the count began (None: nothing to hold a statement to, as for the books)."""
        found = self._count(fitted)
        if found is None:
            return None
        _, b = found
        start = b.capacity - b.used
        return max(0, start - (fitted.position - b.position)), start

    # ------------------------------------------------------------------ the fluid books
    def fluid_short(self, drops_total: int) -> str | None:
        """Every drop that left the nozzle is booked, in all and since the last refill."""
        fluid = self._fluid()
        if fluid is None:
            return None
        total, refill_id, at_refill = fluid
        f = self.fluid
        booked, dispensed = total - f["books0"], drops_total - f["phys0"]
        if booked < dispensed:
            return f"{dispensed} drops left the nozzle, the books count {booked}"
        if refill_id != f["refill_id"]:  # a refill booked since the last look: counted from now
            f.update(refill_id=refill_id, refill_books=at_refill, refill_phys=drops_total)
        elif total - f["refill_books"] < drops_total - f["refill_phys"]:
            return (
                f"{drops_total - f['refill_phys']} drops left the nozzle since the refill, "
                f"the books count {total - f['refill_books']}"
            )
        return None

    def refills_from_the_float(self, refills_seen: int) -> str | None:
        """A refill the station booked from its float switch is a real one: no more of them
        since the auditor began than the times the level physically rose past the float
        (`refills_seen`, the world's count). The first call sets the baselines."""
        booked = self._one("SELECT count(*) FROM refills WHERE source = 'float switch'")
        if booked is None:
            return None
        f = self.fluid
        if "float_booked0" not in f:
            f.update(float_booked0=int(booked), float_seen0=refills_seen)
            return None
        booked, seen = int(booked) - int(f["float_booked0"]), refills_seen - int(f["float_seen0"])
        if booked > seen:
            return (
                f"{booked} refill(s) booked from the float switch, but the level rose past the float "
                f"only {seen} time(s)"
            )
        return None

    def fluid_left(self, drops_total: int, configured: int) -> tuple[int, int] | None:
        """The most drops anyone may say are left in the reservoir: what it was declared to hold
        when its count began (the last refill's capacity; with no refill on the books, the
        `configured` one) minus the drops that physically left the nozzle since (never below 0),
        with that declared capacity. None until `fluid_short` has seen the last refill: a
        refill's count starts where the auditor first saw it."""
        fluid = self._fluid()
        if fluid is None or fluid[1] != self.fluid["refill_id"]:
            return None
        refill_id = fluid[1]
        if refill_id is None:
            declared, since = configured, int(self.fluid["phys0"] or 0)
        else:
            capacity = self._one("SELECT capacity FROM refills WHERE id = ?", (refill_id,))
            if capacity is None:
                return None
            declared, since = int(capacity), int(self.fluid["refill_phys"] or 0)
        return max(0, declared - (drops_total - since)), declared
