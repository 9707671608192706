"""Domain vocabulary shared by the controller, the store, the console and the simulator."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Mode(str, Enum):
    """Cleaning mode chosen on the panel's mode switch."""

    DRY = "dry"
    WET = "wet"  # wet-to-dry


class Gender(str, Enum):
    """Connector gender as read from the guide-pin sensors."""

    MALE = "male"  # both guide pins
    FEMALE = "female"  # no guide pins
    DAMAGED = "damaged"  # exactly one pin: bent or broken


class CassetteType(str, Enum):
    STANDARD = "standard"  # flat window, for female connectors
    MALE_MT = "male_mt"  # slotted backing for the guide pins of male connectors


CASSETTE_FOR = {Gender.MALE: CassetteType.MALE_MT, Gender.FEMALE: CassetteType.STANDARD}


class Outcome(str, Enum):
    """How a clean attempt ended. Every attempt gets exactly one."""

    CLEANED = "cleaned"
    FAILED = "failed"  # ribbon was consumed, the swipe (or the machine) did not do its job
    REJECTED = "rejected"  # refused before anything was consumed
    INTERRUPTED = "interrupted"  # power loss, shutdown or reset in the middle


class Reason(str, Enum):
    """Why an attempt failed or was rejected; the text is what the operator is told."""

    # rejections: nothing consumed
    WRONG_CASSETTE_MALE = "male connector: fit the male MT cassette"
    WRONG_CASSETTE_FEMALE = "female connector: fit the standard cassette"
    DAMAGED_PINS = "one guide pin sensed: check guide pins / re-seat"
    UNSETTLED_PINS = "guide-pin reading did not settle: re-seat the connector"
    FLUID_LOW = "fluid low: refill the reservoir or switch to DRY"
    CASSETTE_EMPTY = "cassette used up: fit a new cassette"
    REMOVED_EARLY = "connector removed before cleaning started"
    CANCELLED_EARLY = "cancelled on the panel before cleaning started"
    SCAN_CONNECTOR = "scan the connector first"  # [traceability] require_connector_id
    SCAN_BADGE = "scan your badge first"  # [traceability] require_operator
    SCAN_CASSETTE = "scan the cassette's label: the cassette was changed"  # labelled cassettes
    # [inspection] (docs/design.md section 10)
    QUARANTINED = "quarantined: replace or repair the connector (a maintenance engineer releases it)"
    INSPECT_FIRST = "inspect first: a verdict is awaited"
    NEEDS_WET = "clean again, wet-to-dry: set the switch to WET-TO-DRY"
    # swipe failures: ribbon consumed
    NO_SWIPE = "no swipe in time"
    REVERSED = "swipe reversed: pull from top (A) to bottom (B)"
    BACK_AND_FORTH = "back-and-forth or second pass: pull once, one way"
    PARTIAL = "partial swipe: pull all the way across the window"
    TOO_FAST = "swipe too fast"
    TOO_SLOW = "swipe too slow"
    GATE_BLOCKED = "swipe gate blocked when the swipe was due"
    REMOVED_MID_CYCLE = "connector removed during the clean"
    CANCELLED = "cancelled on the panel"
    # a swipe begun before swipe-now: rejected while the guide pins are read (nothing used),
    # failed once the wheel has moved or the drop is placed (those are used)
    TOO_EARLY = "too early: wait for green + amber"
    # machine faults during a clean
    JAM = "wheel jam: no index pulse within the allowed steps"
    INDEX_FAULT = "index sensor fault: a position was signalled far too soon"
    GATE_BLOCKED_EARLY = "a swipe gate reads blocked: clear or clean the gates, then present again"
    NO_DROP = "no drop seen: check the pump and nozzle"
    CASSETTE_PULLED = "cassette removed during the clean"
    FAULT = "station fault"
    INTERRUPTED = "interrupted"


class FaultCode(str, Enum):
    """Faults that stop the station until cleared."""

    JAM = "jam"
    NO_CASSETTE = "no_cassette"
    CASSETTE_PULLED = "cassette_pulled"
    NO_DROP = "no_drop"
    INTERNAL = "internal"
    STORAGE = "storage"
    STARTUP = "startup"  # a start-up check failed (sensor implausible)
    SENSOR = "sensor"  # a sensor reads something impossible while the station waits


# least to most serious: while in fault, only a more serious cause replaces the one shown
FAULT_SEVERITY = [
    FaultCode.NO_CASSETTE,
    FaultCode.CASSETTE_PULLED,
    FaultCode.NO_DROP,
    FaultCode.JAM,
    FaultCode.SENSOR,
    FaultCode.STARTUP,
    FaultCode.INTERNAL,
    FaultCode.STORAGE,
]


@dataclass
class ServiceResult:
    """What a maintenance action did: `lines` for a person, `ok` for the console's framing."""

    ok: bool
    lines: list[str] = field(default_factory=list)
    error: str = ""


class Verdict(str, Enum):
    """An inspection's result as the station records it (it never grades images itself)."""

    PASS = "pass"
    FAIL = "fail"
    NO_VERDICT = "no_verdict"  # none arrived within inspection.verdict_timeout_s
