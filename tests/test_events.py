"""Typed events: every announcement has a stable, versioned JSON form that round-trips, and a
listener that fails never reaches the station or the other listeners."""

from __future__ import annotations

import dataclasses
import json

import pytest

from station.domain import CassetteType, FaultCode, Gender, Mode, Outcome, Reason, Verdict
from station.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    AttemptFinished,
    AttemptStarted,
    CassetteDeclared,
    CleanModeChanged,
    CodeScanned,
    DropDispensed,
    Event,
    EventBus,
    FaultCleared,
    FaultRaised,
    FluidRefilled,
    InspectionDue,
    MaintenanceDone,
    ModeSet,
    QuarantineReleased,
    Recovered,
    ScanRefused,
    SensorChanged,
    StateChanged,
    StationStatus,
    StationStopped,
    SwipeNow,
    VerdictRecorded,
    WarningRaised,
    WheelAdvanced,
    from_json,
)
from station.ports import Sensor

# One example of every kind, with the JSON a consumer (fleet, QA export) receives.
EXAMPLES: list[tuple[Event, dict[str, object]]] = [
    (StateChanged("swipe_ready"), {"state": "swipe_ready"}),
    (Recovered((3, 4)), {"interrupted": [3, 4]}),
    (StationStopped("signal"), {"reason": "signal"}),
    (AttemptStarted(7, Mode.WET), {"id": 7, "mode": "wet"}),
    (WheelAdvanced(3, 192, 0.2711), {"positions": 3, "steps": 192, "seconds": 0.2711}),
    (CleanModeChanged(7, Mode.DRY, "switched"), {"id": 7, "mode": "dry", "why": "switched"}),
    (DropDispensed(7, "clean"), {"attempt_id": 7, "source": "clean"}),
    (DropDispensed(None, "prime"), {"attempt_id": None, "source": "prime"}),
    (SwipeNow(7, 5.98), {"id": 7, "deadline_s": 5.98}),
    (
        AttemptFinished(7, Outcome.FAILED, Reason.REVERSED, Gender.MALE, Mode.DRY, 0, 3, 0.6),
        {
            "id": 7,
            "outcome": "failed",
            "reason": Reason.REVERSED.value,
            "gender": "male",
            "mode": "dry",
            "drops": 0,
            "positions": 3,
            "pass_s": 0.6,
            "connector": None,
            "operator": None,
        },
    ),
    (
        AttemptFinished(8, Outcome.CLEANED, None, Gender.FEMALE, Mode.WET, 1, 3, 0.5),
        {
            "id": 8,
            "outcome": "cleaned",
            "reason": "",
            "gender": "female",
            "mode": "wet",
            "drops": 1,
            "positions": 3,
            "pass_s": 0.5,
            "connector": None,
            "operator": None,
        },
    ),
    (
        AttemptFinished(9, Outcome.REJECTED, Reason.UNSETTLED_PINS, None, Mode.DRY, 0, 0, None),
        {
            "id": 9,
            "outcome": "rejected",
            "reason": Reason.UNSETTLED_PINS.value,
            "gender": None,
            "mode": "dry",
            "drops": 0,
            "positions": 0,
            "pass_s": None,
            "connector": None,
            "operator": None,
        },
    ),
    (
        AttemptFinished(10, Outcome.CLEANED, None, Gender.FEMALE, Mode.DRY, 0, 3, 0.4, "CBL-0001-A", "OP-7"),
        {
            "id": 10,
            "outcome": "cleaned",
            "reason": "",
            "gender": "female",
            "mode": "dry",
            "drops": 0,
            "positions": 3,
            "pass_s": 0.4,
            "connector": "CBL-0001-A",
            "operator": "OP-7",
        },
    ),
    (
        CodeScanned("connector", "CBL-0001-A", "scanner", "CBL-0001", "A"),
        {"what": "connector", "code": "CBL-0001-A", "source": "scanner", "cable": "CBL-0001", "end": "A"},
    ),
    (
        CodeScanned("operator", "OP-7", "console:/dev/pts/1"),
        {"what": "operator", "code": "OP-7", "source": "console:/dev/pts/1", "cable": None, "end": None},
    ),
    (
        ScanRefused("\x1b[A", "control characters in the code", "scanner"),
        {"code": "\x1b[A", "reason": "control characters in the code", "source": "scanner"},
    ),
    (InspectionDue(11, "CBL-0001-A", 300.0), {"attempt_id": 11, "connector": "CBL-0001-A", "timeout_s": 300.0}),
    (
        VerdictRecorded(11, "CBL-0001-A", Verdict.FAIL, "console:/dev/pts/1", "clean_wet"),
        {
            "attempt_id": 11,
            "connector": "CBL-0001-A",
            "verdict": "fail",
            "source": "console:/dev/pts/1",
            "next": "clean_wet",
        },
    ),
    (
        VerdictRecorded(None, None, Verdict.NO_VERDICT, "station", "quarantined"),
        {"attempt_id": None, "connector": None, "verdict": "no_verdict", "source": "station", "next": "quarantined"},
    ),
    (QuarantineReleased("CBL-0001-A", "console:x"), {"connector": "CBL-0001-A", "source": "console:x"}),
    (FaultRaised(FaultCode.JAM, "jam: confirmed 0 of 3"), {"code": "jam", "detail": "jam: confirmed 0 of 3"}),
    (FaultCleared(FaultCode.NO_CASSETTE), {"code": "no_cassette"}),
    (
        WarningRaised("cassette_low", "cassette low: 9 cleans left"),
        {"code": "cassette_low", "text": "cassette low: 9 cleans left"},
    ),
    (
        CassetteDeclared(2, CassetteType.MALE_MT, 1500, "panel"),
        {"id": 2, "type": "male_mt", "capacity": 1500, "source": "panel"},
    ),
    (FluidRefilled(2000, "console:/dev/pts/1"), {"capacity": 2000, "source": "console:/dev/pts/1"}),
    (ModeSet(Mode.WET, "console:x"), {"mode": "wet", "source": "console:x"}),
    (ModeSet(None, "console:x"), {"mode": None, "source": "console:x"}),
    (
        MaintenanceDone("jog", False, "console:x", "wheel jam"),
        {"action": "jog", "ok": False, "source": "console:x", "error": "wheel jam"},
    ),
    (SensorChanged(Sensor.GATE_A, True, 1.25), {"sensor": "gate_a", "active": True, "t": 1.25}),
    (
        StationStatus("fault", Mode.DRY, CassetteType.STANDARD, 1497, 499, 2000, False, FaultCode.JAM),
        {
            "state": "fault",
            "mode": "dry",
            "cassette": "standard",
            "ribbon_remaining": 1497,
            "cleans_remaining": 499,
            "fluid_drops_left": 2000,
            "fluid_low": False,
            "fault": "jam",
        },
    ),
]


@pytest.mark.parametrize("event, fields", EXAMPLES, ids=lambda x: type(x).__name__ if isinstance(x, Event) else "")
def test_json_form_is_schema_kind_then_fields_and_round_trips(event, fields):
    data = event.to_json()
    assert data == {"schema": SCHEMA_VERSION, "kind": event.kind, **fields}
    assert list(data)[:2] == ["schema", "kind"]
    wire = json.loads(json.dumps(data))  # through real JSON text, as a broker carries it
    assert from_json(wire) == event


def test_an_older_result_without_the_traceability_fields_still_reads():
    event = AttemptFinished(8, Outcome.CLEANED, None, Gender.FEMALE, Mode.WET, 1, 3, 0.5)
    old = {k: v for k, v in event.to_json().items() if k not in ("connector", "operator")}
    assert from_json(old) == event


def test_every_event_kind_has_an_example_and_a_unique_name():
    assert {type(e) for e, _ in EXAMPLES} == set(EVENT_TYPES.values())
    assert len({cls.kind for cls in EVENT_TYPES.values()}) == len(EVENT_TYPES)


def test_events_are_frozen():
    event = StateChanged("idle")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.state = "fault"  # type: ignore[misc]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"schema": 99, "kind": "state", "state": "idle"}, "schema 99"),
        ({"kind": "state", "state": "idle"}, "schema None"),
        ({"schema": SCHEMA_VERSION, "kind": "teleport"}, "unknown event kind 'teleport'"),
    ],
)
def test_from_json_refuses_what_it_cannot_read(data, message):
    with pytest.raises(ValueError, match=message):
        from_json(data)


def test_bus_delivers_in_order_and_survives_a_failing_listener(caplog):
    bus = EventBus()
    heard: list[tuple[str, Event]] = []

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    bus.subscribe(lambda e: heard.append(("first", e)))
    bus.subscribe(broken)
    bus.subscribe(lambda e: heard.append(("third", e)))
    bus.publish(StateChanged("idle"))
    assert heard == [("first", StateChanged("idle")), ("third", StateChanged("idle"))]
    assert "listener failed on state" in caplog.text


def test_bus_unsubscribe_stops_delivery_even_from_inside_a_listener():
    bus = EventBus()
    heard: list[Event] = []

    def once(event: Event) -> None:
        heard.append(event)
        bus.unsubscribe(once)

    bus.subscribe(once)
    bus.publish(StateChanged("idle"))
    bus.publish(StateChanged("fault"))
    bus.unsubscribe(once)  # a second unsubscribe is harmless
    assert heard == [StateChanged("idle")]


def test_the_station_announces_only_typed_events(bench):
    """End to end: every announcement of a clean, a refusal and a fault is an Event whose JSON
    form reads back as the same event."""
    heard: list[Event] = []
    bench.controller.events.subscribe(heard.append)
    bench.clean("female", wet=True)
    bench.clean("male")  # refused: wrong cassette
    bench.world.inject("jam")
    bench.clean("female")
    kinds = {type(e) for e in heard}
    assert {StateChanged, AttemptStarted, WheelAdvanced, DropDispensed, SwipeNow, AttemptFinished, FaultRaised} <= kinds
    for event in heard:
        assert isinstance(event, Event)
        assert from_json(json.loads(json.dumps(event.to_json()))) == event


def test_the_orderly_stop_ends_a_job_in_flight_and_is_announced(make_bench):
    """One shutdown path: a prime in flight ends with the stop's reason, then StationStopped."""
    from station.domain import ServiceResult

    b = make_bench()
    heard: list[Event] = []
    b.controller.events.subscribe(heard.append)
    results: list[ServiceResult] = []
    b.controller.jobs.prime(5, "console:test", results.append)
    b.run_for(0.01)
    b.close("power switch")
    assert results == [ServiceResult(False, [], "station stopped")]
    assert [e for e in heard if isinstance(e, (MaintenanceDone, StationStopped))] == [
        MaintenanceDone("prime", False, "console:test", "station stopped"),
        StationStopped("power switch"),
    ]
