"""The end face of an MPO/MT connector as physics has it: 12 or 24 fibers, each with the
contamination and damage that sit in its zone A (the core region) and zone B (the cladding, to
115 µm diameter), for the inspection zones of IEC 61300-3-35 (docs/contamination.md).

Per zone: loose particles (their sizes in µm: a swipe can take them), an oily film (coverage and
thickness: only a wet-to-dry clean lifts it) and permanent damage (pits and scratches: no
cleaning changes them, so they are tuples). Pure: no world, no clock; randomness only from the
`random.Random` handed in, so a seed gives the same face every time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum


class FiberType(str, Enum):
    SM_PC = "SM_PC"
    SM_APC = "SM_APC"
    MM_PC = "MM_PC"


class Dirt(str, Enum):
    """How dirty a connector comes to the bench."""

    CLEAN = "clean"
    LIGHT = "light"
    HEAVY = "heavy"
    OILY = "oily"
    DAMAGED = "damaged"


ZONE_B_OUTER_UM = 115.0  # zone B ends at 115 µm diameter on an MT ferrule (all fiber types)
# Zone A's outer diameter per fiber type (DESIGN.md section 10: SM 0-25 µm, MM 0-65 µm).
ZONE_A_OUTER_UM = {FiberType.SM_PC: 25.0, FiberType.SM_APC: 25.0, FiberType.MM_PC: 65.0}
ZONES = ("a", "b")


def zone_area_um2(fiber_type: FiberType, zone: str) -> float:
    """Area of a zone in µm²: zone A a disc, zone B the ring around it to 115 µm."""
    ra = ZONE_A_OUTER_UM[fiber_type] / 2
    if zone == "a":
        return math.pi * ra**2
    return math.pi * ((ZONE_B_OUTER_UM / 2) ** 2 - ra**2)


@dataclass
class Zone:
    """What lies in one zone of one fiber. Film coverage is the zone's fraction (0..1) under it."""

    particles: list[float] = field(default_factory=list)  # loose particles, size in µm
    film_coverage: float = 0.0
    film_thickness_nm: float = 0.0
    pits: tuple[float, ...] = ()  # permanent defects (µm): no cleaning removes them
    scratches: tuple[float, ...] = ()  # permanent, by width (µm)

    @property
    def filmed(self) -> bool:
        return self.film_coverage > 0.0

    def copy(self) -> Zone:
        return Zone(list(self.particles), self.film_coverage, self.film_thickness_nm, self.pits, self.scratches)


@dataclass
class Fiber:
    a: Zone = field(default_factory=Zone)
    b: Zone = field(default_factory=Zone)

    def zone(self, name: str) -> Zone:
        return self.a if name == "a" else self.b


@dataclass
class EndFace:
    """One connector's end face. Fibers are numbered 1..n; fiber i sits in column (i-1) % 12 of
    its row (24 fibers: two rows of 12), column 0 on the side a downward swipe crosses first."""

    fiber_type: FiberType
    fibers: list[Fiber]

    def __post_init__(self) -> None:
        self.fiber_type = FiberType(self.fiber_type)
        if len(self.fibers) not in (12, 24):
            raise ValueError(f"an MT ferrule has 12 or 24 fibers, not {len(self.fibers)}")

    @classmethod
    def clean(cls, fiber_type: FiberType | str = FiberType.SM_PC, fibers: int = 12) -> EndFace:
        return cls(FiberType(fiber_type), [Fiber() for _ in range(fibers)])

    @staticmethod
    def column(index: int) -> int:
        """The column (0..11) of the fiber at list index `index`."""
        return index % 12

    def copy(self) -> EndFace:
        return EndFace(self.fiber_type, [Fiber(f.a.copy(), f.b.copy()) for f in self.fibers])

    def particle_count(self) -> int:
        return sum(len(f.zone(z).particles) for f in self.fibers for z in ZONES)

    def film_fibers(self) -> int:
        return sum(1 for f in self.fibers if f.a.filmed or f.b.filmed)

    def damage(self) -> tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]:
        """The permanent damage, zone by zone: equal before and after any cleaning."""
        return tuple((f.zone(z).pits, f.zone(z).scratches) for f in self.fibers for z in ZONES)


@dataclass(frozen=True)
class DirtProfile:
    """How a contamination level populates a face. Densities are loose particles per µm² of
    zone (a Poisson mean per zone); sizes follow a power law from `size_min_um` (N(>d) ∝ d^-alpha,
    the shape airborne dust and handling debris take), cut at `size_max_um`."""

    particle_density: float = 0.0
    size_alpha: float = 1.5
    size_min_um: float = 0.5
    size_max_um: float = 30.0
    film_fiber_p: float = 0.0  # chance a fiber carries film
    film_coverage: tuple[float, float] = (0.2, 0.9)
    film_thickness_nm: tuple[float, float] = (20.0, 200.0)
    pit_p: float = 0.0  # chance per fiber and zone of a pit
    pit_um: tuple[float, float] = (2.0, 8.0)
    scratch_p: float = 0.0  # chance per fiber and zone of a scratch
    scratch_um: tuple[float, float] = (1.0, 6.0)


# Light: ~1.5 particles in zone B of an SM fiber, ~0.07 in zone A; heavy: 5x that, larger grains.
PROFILES: Mapping[Dirt, DirtProfile] = {
    Dirt.CLEAN: DirtProfile(),
    Dirt.LIGHT: DirtProfile(particle_density=1.5e-4),
    Dirt.HEAVY: DirtProfile(particle_density=8e-4, size_alpha=1.2),
    Dirt.OILY: DirtProfile(particle_density=1.5e-4, film_fiber_p=0.8),
    Dirt.DAMAGED: DirtProfile(particle_density=1.5e-4, pit_p=0.15, scratch_p=0.15),
}

# The population mix: see docs/contamination.md for where the figures come from.
POPULATION_MIX: Mapping[Dirt, float] = {
    Dirt.CLEAN: 0.35,
    Dirt.LIGHT: 0.35,
    Dirt.HEAVY: 0.15,
    Dirt.OILY: 0.10,
    Dirt.DAMAGED: 0.05,
}


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method: the means here are small)."""
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def particle_size(rng: random.Random, profile: DirtProfile) -> float:
    """One particle's size (µm) from the profile's power law."""
    size: float = profile.size_min_um * (1.0 - rng.random()) ** (-1.0 / profile.size_alpha)
    return round(min(size, profile.size_max_um), 2)


def make_face(
    dirt: Dirt | str,
    rng: random.Random,
    *,
    fiber_type: FiberType | str = FiberType.SM_PC,
    fibers: int = 12,
    profiles: Mapping[Dirt, DirtProfile] = PROFILES,
) -> EndFace:
    """A face as a connector of contamination level `dirt` comes to the bench."""
    face = EndFace.clean(fiber_type, fibers)
    profile = profiles[Dirt(dirt)]
    for fiber in face.fibers:
        filmed = rng.random() < profile.film_fiber_p
        coverage = rng.uniform(*profile.film_coverage) if filmed else 0.0
        thickness = rng.uniform(*profile.film_thickness_nm) if filmed else 0.0
        for name in ZONES:
            zone = fiber.zone(name)
            n = poisson(rng, profile.particle_density * zone_area_um2(face.fiber_type, name))
            zone.particles = [particle_size(rng, profile) for _ in range(n)]
            zone.film_coverage, zone.film_thickness_nm = coverage, thickness
            if rng.random() < profile.pit_p:
                zone.pits = (round(rng.uniform(*profile.pit_um), 2),)
            if rng.random() < profile.scratch_p:
                zone.scratches = (round(rng.uniform(*profile.scratch_um), 2),)
    return face


def pick_dirt(rng: random.Random, mix: Mapping[Dirt, float] = POPULATION_MIX) -> Dirt:
    """One connector's contamination level, drawn from a population mix (weights need not sum to 1)."""
    if not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(f"a population mix needs non-negative weights with a positive sum, not {dict(mix)}")
    levels = list(mix)
    chosen: Dirt = rng.choices(levels, weights=[mix[d] for d in levels])[0]
    return chosen


def population(
    n: int,
    rng: random.Random,
    *,
    mix: Mapping[Dirt, float] = POPULATION_MIX,
    fiber_type: FiberType | str = FiberType.SM_PC,
    fibers: int = 12,
) -> list[tuple[Dirt, EndFace]]:
    """`n` connectors as they come to the bench: each one's level and face."""
    out = []
    for _ in range(n):
        dirt = pick_dirt(rng, mix)
        out.append((dirt, make_face(dirt, rng, fiber_type=fiber_type, fibers=fibers)))
    return out
