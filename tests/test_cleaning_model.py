"""The cleaning model (hw_sim.cleaning_model): what one pass over the ribbon does to an end face,
checked as statistics over many seeded faces, and the things that hold for every single pass
(damage stays, nothing is created on fresh ribbon, what comes off lands on the ribbon)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from hw_sim.cleaning_model import DEFAULT_PARAMS, CleaningParams, Pass, apply_pass, crossed, stroke_passes
from hw_sim.endface import ZONES, EndFace, make_face
from hw_sim.iec import grade

N = 300


def faces(dirt: str, seed: int, n: int = N) -> list[EndFace]:
    rng = random.Random(seed)
    return [make_face(dirt, rng) for _ in range(n)]


def left_after(p: Pass, dirt: str = "heavy", seed: int = 1) -> float:
    """Share of loose particles still on the faces after one pass each (fresh ribbon unless `p` says)."""
    rng = random.Random(seed + 1000)
    before = after = 0
    for face in faces(dirt, seed):
        before += face.particle_count()
        apply_pass(face, p, rng, [])
        after += face.particle_count()
    return after / before


def test_a_full_dry_swipe_on_fresh_ribbon_removes_most_loose_particles():
    assert left_after(Pass()) < 0.25


def test_wet_to_dry_removes_more_than_dry():
    assert left_after(Pass(wet=True)) < 0.6 * left_after(Pass())


def test_dry_leaves_small_particles_held_by_a_film_more_often_than_wet():
    def small_left(wet: bool) -> int:
        rng = random.Random(3)
        left = 0
        for face in faces("oily", 2):
            apply_pass(face, Pass(wet=wet), rng, [])
            left += sum(s < 2 for f in face.fibers for z in ZONES for s in f.zone(z).particles if f.zone(z).filmed)
        return left

    assert small_left(wet=False) > 3 * max(small_left(wet=True), 1)


def test_wet_to_dry_lifts_the_film_and_dry_never_does():
    rng = random.Random(4)
    oily = faces("oily", 4)
    filmed = sum(f.film_fibers() for f in oily)
    dry = [f.copy() for f in oily]
    for face in dry:
        before = [f.zone(z).film_coverage for f in face.fibers for z in ZONES]
        apply_pass(face, Pass(wet=False), rng, [])
        after = [f.zone(z).film_coverage for f in face.fibers for z in ZONES]
        assert all(a >= b for a, b in zip(after, before, strict=True)), "a dry pass may smear a film, never lift it"
    assert sum(f.film_fibers() for f in dry) == filmed
    for face in oily:
        apply_pass(face, Pass(wet=True), rng, [])
    assert sum(f.film_fibers() for f in oily) < 0.05 * filmed


def test_one_wet_pass_passes_most_oily_faces_that_no_number_of_dry_passes_does():
    rng = random.Random(5)
    oily = faces("oily", 5, 200)
    dry = [f.copy() for f in oily]
    for face in dry:
        for _ in range(3):
            apply_pass(face, Pass(), rng, [])
    assert not any(grade(f).passed for f in dry)
    for face in oily:
        apply_pass(face, Pass(wet=True), rng, [])
    assert sum(grade(f).passed for f in oily) > 0.5 * len(oily)


def test_a_pass_on_used_ribbon_deposits_what_the_section_holds_and_debris():
    rng = random.Random(6)
    got_from_load = got_debris = 0
    for _ in range(N):
        face = EndFace.clean()
        load = [4.0] * 10
        apply_pass(face, Pass(fresh=False), rng, load)
        got_from_load += sum(s == 4.0 for f in face.fibers for z in ZONES for s in f.zone(z).particles)
        face = EndFace.clean()
        apply_pass(face, Pass(fresh=False), rng, [])
        got_debris += face.particle_count()
    assert 0.25 * 10 * N < got_from_load < 0.35 * 10 * N  # used_redeposit_p: 30% of the load comes back
    assert got_debris > 3 * N  # ~0.5 per fiber crossed, less what the pass takes


def test_a_used_section_leaves_a_clean_face_dirtier_and_a_fresh_one_never_does():
    rng = random.Random(7)
    for _ in range(N):
        face = EndFace.clean()
        apply_pass(face, Pass(), rng, [])
        assert face == EndFace.clean()
    dirtied = 0
    for _ in range(N):
        face = EndFace.clean()
        apply_pass(face, Pass(fresh=False), rng, [2.5] * 20)
        dirtied += face.particle_count() > 0
    assert dirtied > 0.95 * N


def test_what_a_fresh_forward_pass_wipes_off_lands_on_the_ribbon():
    rng = random.Random(8)
    for face in faces("heavy", 8, 50):
        before = sorted(s for f in face.fibers for z in ZONES for s in f.zone(z).particles)
        load: list[float] = []
        apply_pass(face, Pass(), rng, load)
        after = sorted(s for f in face.fibers for z in ZONES for s in f.zone(z).particles)
        assert sorted(after + load) == before


@pytest.mark.parametrize("direction,touched", [("down", range(0, 6)), ("up", range(6, 12))])
def test_a_partial_pass_cleans_only_the_fibers_it_crossed(direction, touched):
    rng = random.Random(9)
    p = Pass(direction=direction, fraction=0.5)
    for fibers in (12, 24):
        face = make_face("heavy", random.Random(fibers), fibers=fibers)
        face_before = face.copy()
        apply_pass(face, p, rng, [])
        assert crossed(face, p) == [i for i in range(fibers) if EndFace.column(i) in touched]
        for i, (now, was) in enumerate(zip(face.fibers, face_before.fibers, strict=True)):
            if EndFace.column(i) not in touched:
                assert now == was
        assert face.particle_count() < face_before.particle_count()


def test_a_reversed_pass_cleans_less_and_gives_some_back():
    assert left_after(Pass(direction="up")) > 1.3 * left_after(Pass())


@pytest.mark.parametrize("duration_s", [0.05, 5.0])
def test_too_fast_or_too_slow_lowers_the_efficiency(duration_s):
    assert left_after(Pass(duration_s=duration_s)) > 1.3 * left_after(Pass(duration_s=0.6))


def test_back_and_forth_and_double_passes_come_back_over_used_ribbon():
    kw = {"min_s": 0.15, "max_s": 3.0, "wet": False, "fresh": True}
    assert stroke_passes("down", "full", 0.6, **kw) == [Pass("down", 1.0, 0.6, 0.15, 3.0, False, True)]
    assert stroke_passes("down", "partial", 0.6, **kw) == [Pass("down", 0.5, 0.6, 0.15, 3.0, False, True)]
    assert [(p.direction, p.fresh) for p in stroke_passes("down", "back_and_forth", 0.6, **kw)] == [
        ("down", True),
        ("up", False),
    ]
    assert [(p.direction, p.fresh) for p in stroke_passes("up", "double", 0.6, **kw)] == [("up", True), ("up", False)]

    def left(variant: str) -> int:
        rng = random.Random(10)
        total = 0
        for face in faces("heavy", 10, 150):
            load: list[float] = []
            for p in stroke_passes("down", variant, 0.6, **kw):
                apply_pass(face, p, rng, load)
            total += face.particle_count()
        return total

    assert left("back_and_forth") > left("full")


def test_permanent_damage_never_changes():
    rng = random.Random(11)
    passes = [
        Pass(),
        Pass(wet=True),
        Pass(direction="up"),
        Pass(fresh=False),
        Pass(fraction=0.3),
        Pass(duration_s=0.01),
        Pass(wet=True, fresh=False, direction="up"),
    ]
    for face in faces("damaged", 11, 100):
        damage = face.damage()
        load: list[float] = []
        for p in passes:
            apply_pass(face, p, rng, load)
        assert face.damage() == damage
    assert any(not grade(f).passed for f in faces("damaged", 11, 100))


def test_parameters_are_checked_with_their_name():
    assert replace(DEFAULT_PARAMS, used_deposit_mean=2.0).used_deposit_mean == 2.0
    with pytest.raises(ValueError, match="cleaning too_fast_factor = 1.5: a chance or a share"):
        CleaningParams(too_fast_factor=1.5)
    with pytest.raises(ValueError, match="cleaning used_deposit_mean = -1: must not be negative"):
        CleaningParams(used_deposit_mean=-1)
    with pytest.raises(ValueError, match="the last one unbounded"):
        CleaningParams(removal=((2.0, 0.7, 0.9),))
    with pytest.raises(ValueError, match="pass fraction = 1.5"):
        Pass(fraction=1.5)
    with pytest.raises(ValueError, match="pass direction = 'sideways'"):
        Pass(direction="sideways")


def test_the_parameters_change_the_outcome():
    never = CleaningParams(removal=((float("inf"), 0.0, 0.0),))
    rng = random.Random(12)
    for face in faces("heavy", 12, 20):
        before = face.copy()
        apply_pass(face, Pass(), rng, [], never)
        assert face == before
