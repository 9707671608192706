"""Grading an MT end face per IEC 61300-3-35 (Ed. 2 limits as vendors publish them; DESIGN.md
section 10), fiber by fiber in zones A and B. The tables are data (`TABLES`): a zone's limits are
size classes, each with how many features of that size it allows (None: any number).

What the grading counts, as a probe's software would: a defect is a loose particle, a pit, or an
oily film (one defect the size of the circle of the area it covers); a scratch is counted by its
width. A fiber passes when both its zones keep within every class; a face only when every fiber
passes. Pure: it reads the face and changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .endface import ZONES, EndFace, FiberType, Zone, zone_area_um2


@dataclass(frozen=True)
class SizeClass:
    """Features smaller than `upto` µm (or equal, when `inclusive`) not taken by an earlier class;
    at most `allowed` of them (None: any number)."""

    label: str
    upto: float
    inclusive: bool
    allowed: int | None

    def holds(self, size_um: float) -> bool:
        return size_um < self.upto or (self.inclusive and size_um == self.upto)


@dataclass(frozen=True)
class ZoneLimits:
    scratches: tuple[SizeClass, ...]
    defects: tuple[SizeClass, ...]


@dataclass(frozen=True)
class FiberLimits:
    a: ZoneLimits
    b: ZoneLimits


def _c(label: str, upto: float, allowed: int | None, inclusive: bool = True) -> SizeClass:
    return SizeClass(label, upto, inclusive, allowed)


NONE_AT_ALL = (_c("any", math.inf, 0),)
SM_ZONE_B = ZoneLimits(
    scratches=(_c("<=3", 3.0, None), _c(">3", math.inf, 0)),
    defects=(_c("<2", 2.0, None, inclusive=False), _c("2-5", 5.0, 5), _c(">5", math.inf, 0)),
)
TABLES: Mapping[FiberType, FiberLimits] = {
    # SM PC (RL >= 45 dB): zone A 0-25 µm: no scratches, no defects
    FiberType.SM_PC: FiberLimits(ZoneLimits(NONE_AT_ALL, NONE_AT_ALL), SM_ZONE_B),
    # SM APC: zone A: 4 scratches <= 3 µm, none wider; no defects
    FiberType.SM_APC: FiberLimits(
        ZoneLimits(scratches=(_c("<=3", 3.0, 4), _c(">3", math.inf, 0)), defects=NONE_AT_ALL), SM_ZONE_B
    ),
    # MM PC: zone A 0-65 µm, zone B 65-115 µm
    FiberType.MM_PC: FiberLimits(
        ZoneLimits(
            scratches=(_c("<=3", 3.0, None), _c(">3", math.inf, 0)),
            defects=(_c("<=5", 5.0, 4), _c(">5", math.inf, 0)),
        ),
        ZoneLimits(
            scratches=(_c("<=5", 5.0, None), _c(">5", math.inf, 0)),
            defects=(_c("<5", 5.0, None, inclusive=False), _c("5-10", 10.0, 5), _c(">10", math.inf, 0)),
        ),
    ),
}


def film_defect_um(zone: Zone, fiber_type: FiberType, name: str) -> float:
    """An oily film seen as one defect: the diameter of a circle of the area it covers."""
    return 2.0 * math.sqrt(zone.film_coverage * zone_area_um2(fiber_type, name) / math.pi)


@dataclass(frozen=True)
class ZoneFindings:
    defects: dict[str, int]  # count per size class label
    scratches: dict[str, int]
    failures: tuple[str, ...]  # each class over its limit, in words

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {"defects": dict(self.defects), "scratches": dict(self.scratches), "pass": self.passed}


@dataclass(frozen=True)
class FiberFindings:
    fiber: int  # 1-based, as probes number them
    zone_a: ZoneFindings
    zone_b: ZoneFindings

    @property
    def passed(self) -> bool:
        return self.zone_a.passed and self.zone_b.passed

    def to_json(self) -> dict[str, Any]:
        return {
            "fiber": self.fiber,
            "zone_a": self.zone_a.to_json(),
            "zone_b": self.zone_b.to_json(),
            "pass": self.passed,
        }


@dataclass(frozen=True)
class Verdict:
    """A face's grade: every fiber's findings; PASS only if every fiber passes."""

    fiber_type: FiberType
    fibers: tuple[FiberFindings, ...]

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.fibers)

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def failures(self) -> list[str]:
        """Why it failed, e.g. 'fiber 3 zone A: 1 defect any (0 allowed)'."""
        return [
            f"fiber {f.fiber} zone {name}: {why}"
            for f in self.fibers
            for name, z in (("A", f.zone_a), ("B", f.zone_b))
            for why in z.failures
        ]

    def to_json(self) -> dict[str, Any]:
        """What a probe's software sends: {"verdict": "PASS"|"FAIL", "fiber_type": ..., "fibers": [...]}."""
        return {
            "verdict": self.verdict,
            "fiber_type": self.fiber_type.value,
            "fibers": [f.to_json() for f in self.fibers],
        }


def _count(sizes: list[float], classes: tuple[SizeClass, ...], what: str) -> tuple[dict[str, int], list[str]]:
    counts = dict.fromkeys((c.label for c in classes), 0)
    for size in sizes:
        counts[next(c for c in classes if c.holds(size)).label] += 1
    failures = [
        f"{counts[c.label]} {what}{'s' if counts[c.label] > 1 else ''} {c.label} µm ({c.allowed} allowed)"
        for c in classes
        if c.allowed is not None and counts[c.label] > c.allowed
    ]
    return counts, failures


def grade_zone(zone: Zone, limits: ZoneLimits, fiber_type: FiberType, name: str) -> ZoneFindings:
    defects = [*zone.particles, *zone.pits]
    if zone.filmed:
        defects.append(film_defect_um(zone, fiber_type, name))
    d_counts, d_fail = _count(defects, limits.defects, "defect")
    s_counts, s_fail = _count(list(zone.scratches), limits.scratches, "scratch")
    return ZoneFindings(d_counts, s_counts, tuple(d_fail + s_fail))


def grade(face: EndFace, tables: Mapping[FiberType, FiberLimits] = TABLES) -> Verdict:
    """Grade a face fiber by fiber, zones A and B."""
    limits = tables[face.fiber_type]
    out = []
    for i, fiber in enumerate(face.fibers, start=1):
        a, b = (grade_zone(fiber.zone(z), getattr(limits, z), face.fiber_type, z) for z in ZONES)
        out.append(FiberFindings(i, a, b))
    return Verdict(face.fiber_type, tuple(out))
