"""What one pass of an end face over the cassette's ribbon does to the face (docs/contamination.md).

A pass is described as physics saw it (`Pass`: which way, how much of the face the ribbon
crossed, how long it took against the station's swipe bounds, whether a drop wetted the section,
whether the section was fresh). `apply_pass` changes the face in place with the `random.Random`
handed in, and keeps what it wiped off on the ribbon section (`ribbon`: the sizes of the
particles the section holds), from where a later pass over the same section can pick them up
again. Permanent damage (pits, scratches) is never touched. Every number is a field of the frozen
`CleaningParams`, with its reason next to it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields

from .endface import ZONES, DirtProfile, EndFace, Zone, particle_size, poisson, zone_area_um2
from .model import SwipeVariant

INF = math.inf


@dataclass(frozen=True)
class CleaningParams:
    """The cleaning model's parameters (defaults and their rationale: docs/contamination.md)."""

    # Chance a full pass on fresh ribbon, at a good speed, the right way, takes one loose particle,
    # by size class: (sizes below this µm, dry, wet-to-dry). Small grains sit in the surface's
    # roughness and are held by electrostatic and van der Waals forces; the solvent loosens them.
    removal: tuple[tuple[float, float, float], ...] = ((2.0, 0.75, 0.93), (5.0, 0.90, 0.98), (INF, 0.97, 0.99))
    dry_film_stick: float = 0.4  # dry: a particle held in an oily film comes off this much less often
    film_wet_removal: float = 0.99  # wet-to-dry: chance a fiber's film goes (at film_reference_nm or thinner)
    film_reference_nm: float = 200.0  # thicker films are lifted less often in one pass (∝ 1/thickness)
    film_wet_residual: float = 0.2  # a film a wet pass did not lift keeps this share of its coverage
    dry_smear_growth: float = 1.3  # dry: the ribbon spreads a film over more of its zone (never removes it)
    too_fast_factor: float = 0.6  # under the minimum pass time: the ribbon skims, less contact time
    too_slow_factor: float = 0.8  # over the maximum: a hesitant pull stops and rocks on the ribbon
    reversed_factor: float = 0.8  # against the cassette's direction: the face leaves over wiped ribbon
    reversed_redeposit_p: float = 0.15  # ... and picks back this share of what it just left there
    used_factor: float = 0.6  # a section touched before is loaded: it takes less
    used_redeposit_p: float = 0.3  # each particle a used section holds goes back onto a face crossing it
    used_deposit_mean: float = 0.5  # new debris (lint, earlier faces' residue) per fiber crossed on used ribbon
    partial_fraction: float = 0.5  # the share of the face a swipe lifted before gate B crossed
    drop_lifetime_s: float = 30.0  # a drop wets its section this long; after that it has evaporated

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "removal":
                bounds = [row[0] for row in value]
                if bounds != sorted(bounds) or bounds[-1] != INF or not all(0 <= p <= 1 for r in value for p in r[1:]):
                    raise ValueError(
                        f"cleaning removal = {value!r}: rows (size below µm, dry p, wet p) in rising size, "
                        "the last one unbounded (inf), chances from 0 to 1"
                    )
            elif value < 0:
                raise ValueError(f"cleaning {f.name} = {value!r}: must not be negative")
            elif f.name.endswith(("_p", "_factor", "_removal", "_residual", "_stick", "_fraction")) and value > 1:
                raise ValueError(f"cleaning {f.name} = {value!r}: a chance or a share, from 0 to 1")

    def removal_p(self, size_um: float, wet: bool) -> float:
        for below, dry_p, wet_p in self.removal:
            if size_um < below:
                return wet_p if wet else dry_p
        raise AssertionError("the last removal row is unbounded")


DEFAULT_PARAMS = CleaningParams()
DEBRIS = DirtProfile(size_alpha=1.5)  # what a used section adds: ordinary dust sizes


@dataclass(frozen=True)
class Pass:
    """One pass of the face over one ribbon section, as physics saw it."""

    direction: str = "down"  # "down": gate A to B, the cassette's direction; "up": reversed
    fraction: float = 1.0  # share of the face the ribbon crossed (a partial pass: less than 1)
    duration_s: float = 0.6
    min_s: float = 0.15  # the station's swipe bounds (swipe.min_pass_s, swipe.max_pass_s)
    max_s: float = 3.0
    wet: bool = False  # a drop on the section, not yet evaporated
    fresh: bool = True  # the section had never been touched

    def __post_init__(self) -> None:
        if self.direction not in ("down", "up"):
            raise ValueError(f"pass direction = {self.direction!r}: down or up")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"pass fraction = {self.fraction!r}: from 0 to 1")


def crossed(face: EndFace, p: Pass) -> list[int]:
    """The fibers (list indices) a pass crossed: a partial pass crosses the columns on the side it
    entered from (column 0 first going down, column 11 first going up)."""
    reach = math.ceil(p.fraction * 12 - 1e-9)
    out = []
    for i in range(len(face.fibers)):
        col = EndFace.column(i)
        if (col if p.direction == "down" else 11 - col) < reach:
            out.append(i)
    return out


def efficiency(p: Pass, params: CleaningParams) -> float:
    """How much of its full effect a pass has: speed, direction and ribbon state."""
    factor = 1.0
    if p.duration_s < p.min_s:
        factor *= params.too_fast_factor
    elif p.duration_s > p.max_s:
        factor *= params.too_slow_factor
    if p.direction == "up":
        factor *= params.reversed_factor
    if not p.fresh:
        factor *= params.used_factor
    return factor


def apply_pass(
    face: EndFace, p: Pass, rng: random.Random, ribbon: list[float], params: CleaningParams = DEFAULT_PARAMS
) -> None:
    """Change `face` in place as one pass does; `ribbon` is the section's load of particles (µm),
    added to by what the pass wipes off and, on used ribbon, drawn from as the face leaves it."""
    fibers = crossed(face, p)
    if not fibers:
        return
    factor = efficiency(p, params)
    wiped: list[float] = []
    for i in fibers:
        fiber = face.fibers[i]
        for name in ZONES:
            zone = fiber.zone(name)
            stick = params.dry_film_stick if zone.filmed and not p.wet else 1.0
            kept: list[float] = []
            for size in zone.particles:
                (wiped if rng.random() < params.removal_p(size, p.wet) * factor * stick else kept).append(size)
            zone.particles = kept
        _film(fiber.a, fiber.b, p, factor, rng, params)
    if p.direction == "up":  # reversed: the face exits over what it wiped and takes some back
        wiped = _give_back(face, fibers, rng, wiped, params.reversed_redeposit_p)
    if not p.fresh:  # the face leaves the section carrying part of its earlier load, and debris
        ribbon[:] = _give_back(face, fibers, rng, ribbon, params.used_redeposit_p)
        for _ in range(poisson(rng, params.used_deposit_mean * len(fibers))):
            _place(face, fibers, rng, particle_size(rng, DEBRIS))
    ribbon.extend(wiped)


def _film(a: Zone, b: Zone, p: Pass, factor: float, rng: random.Random, params: CleaningParams) -> None:
    """A fiber's film is one smear over its zones: the solvent lifts it whole or leaves a residue;
    a dry ribbon only spreads it."""
    zones = [z for z in (a, b) if z.filmed]
    if not zones:
        return
    if not p.wet:
        for zone in zones:
            zone.film_coverage = min(1.0, zone.film_coverage * params.dry_smear_growth)
        return
    thickness = max(z.film_thickness_nm for z in zones)
    chance = params.film_wet_removal * min(1.0, params.film_reference_nm / thickness)
    lifted = rng.random() < chance * factor
    for zone in zones:
        if lifted:
            zone.film_coverage, zone.film_thickness_nm = 0.0, 0.0
        else:
            zone.film_coverage *= params.film_wet_residual
            zone.film_thickness_nm /= 2


def _give_back(face: EndFace, fibers: list[int], rng: random.Random, sizes: list[float], p: float) -> list[float]:
    """Each particle goes (back) onto a crossed fiber with chance `p`; returns those that stay."""
    stay = []
    for size in sizes:
        if rng.random() < p:
            _place(face, fibers, rng, size)
        else:
            stay.append(size)
    return stay


def _place(face: EndFace, fibers: list[int], rng: random.Random, size: float) -> None:
    """A particle lands on a crossed fiber, in zone A or B in proportion to their areas."""
    fiber = face.fibers[rng.choice(fibers)]
    area_a = zone_area_um2(face.fiber_type, "a")
    share_a = area_a / (area_a + zone_area_um2(face.fiber_type, "b"))
    fiber.zone("a" if rng.random() < share_a else "b").particles.append(size)


def stroke_passes(
    direction: str,
    variant: SwipeVariant | str,
    duration_s: float,
    *,
    min_s: float,
    max_s: float,
    wet: bool,
    fresh: bool,
    params: CleaningParams = DEFAULT_PARAMS,
) -> list[Pass]:
    """The passes one stroke of the hand makes over one section: a back-and-forth comes back over
    the ribbon it has just used, a double pass goes over it again."""
    variant = SwipeVariant(variant)
    fraction = params.partial_fraction if variant is SwipeVariant.PARTIAL else 1.0
    first = Pass(direction, fraction, duration_s, min_s, max_s, wet, fresh)
    if variant is SwipeVariant.BACK_AND_FORTH:
        back = "up" if direction == "down" else "down"
        return [first, Pass(back, 1.0, duration_s, min_s, max_s, wet, fresh=False)]
    if variant is SwipeVariant.DOUBLE:
        return [first, Pass(direction, 1.0, duration_s, min_s, max_s, wet, fresh=False)]
    return [first]
