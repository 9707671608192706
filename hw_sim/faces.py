"""The end face of the connector in the operator's hand, and what the window's ribbon does to it.

World composes one `Faces`: it gives each presented connector a face (clean unless told how dirty,
so every bench without dirt behaves as before), and applies the cleaning model (cleaning_model.py)
to it at each stroke the hand makes, from what the world physically knows: whether the section
under the window was fresh, whether a drop still wets it, the stroke's duration against the
configured swipe bounds, its direction and variant. What each section wipes off stays on that
section, so a later stroke over it can pick it up again. The probe grades the face in the hand.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from .cleaning_model import DEFAULT_PARAMS, CleaningParams, apply_pass, stroke_passes
from .endface import Dirt, EndFace, FiberType, make_face
from .model import SwipeRecord
from .probe import ProbeReport, SimProbe

if TYPE_CHECKING:
    from .world import World


class Faces:
    """`in_hand` is the face of the connector the operator holds (seated in the guide or not);
    `ribbon` the particles each (cassette, section) took; `probe` the bench's inspection probe."""

    def __init__(
        self,
        world: World,
        *,
        params: CleaningParams = DEFAULT_PARAMS,
        seed: int = 14,
        fiber_type: FiberType = FiberType.SM_PC,
        fibers: int = 12,
    ) -> None:
        self.world = world
        self.params = params
        self.seed = seed  # the same seed, the same faces in the same order
        self.rng = random.Random(seed)
        self.fiber_type = fiber_type
        self.fibers = fibers
        self.in_hand: EndFace | None = None
        self.ribbon: dict[tuple[str, int], list[float]] = {}
        self.probe = SimProbe()
        self.stroked_at: dict[int, float] = {}  # id(face) -> when the ribbon last touched it (rule 10)

    def presented(self, dirt: Dirt | str | None, face: EndFace | None) -> None:
        """A connector taken in hand: `face` as given, else a new one `dirt` dirty (clean when None)."""
        if face is None:
            face = make_face(dirt or Dirt.CLEAN, self.rng, fiber_type=self.fiber_type, fibers=self.fibers)
        self.in_hand = face

    def stroked(self, record: SwipeRecord) -> None:
        """One stroke of the seated connector over the section under the window."""
        face = self.in_hand
        if face is None:
            return
        self.stroked_at[id(face)] = self.world.loop.now()
        bounds = self.world.config.swipe
        wet = record.drop_age_s is not None and record.drop_age_s <= self.params.drop_lifetime_s
        load = self.ribbon.setdefault((record.cassette, record.section), [])
        for p in stroke_passes(
            record.direction,
            record.variant,
            record.duration_s,
            min_s=bounds.min_pass_s,
            max_s=bounds.max_pass_s,
            wet=wet,
            fresh=record.fresh,
            params=self.params,
        ):
            apply_pass(face, p, self.rng, load, self.params)

    def last_stroke(self, face: EndFace) -> float | None:
        """When the ribbon last touched `face` (None: never, on this bench)."""
        return self.stroked_at.get(id(face))

    def inspect(self) -> ProbeReport:
        """The operator puts the connector in hand into the probe (whose report the world's
        `ProbePort` takes to the station, probe_port.py)."""
        if self.in_hand is None:
            raise LookupError("no connector in hand to inspect")
        return self.probe.inspect(self.in_hand)
