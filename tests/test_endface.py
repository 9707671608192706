"""End faces of MPO/MT connectors (hw_sim.endface): made from a contamination level with a seeded
random.Random, and drawn from a population mix."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from hw_sim.endface import POPULATION_MIX, ZONES, Dirt, EndFace, FiberType, make_face, pick_dirt, population


def test_a_seed_gives_the_same_face():
    assert make_face("heavy", random.Random(7)) == make_face("heavy", random.Random(7))
    assert make_face("heavy", random.Random(7)) != make_face("heavy", random.Random(8))


def test_a_clean_face_carries_nothing():
    face = make_face("clean", random.Random(1), fibers=24)
    assert len(face.fibers) == 24
    assert face.particle_count() == 0 and face.film_fibers() == 0
    assert all(p == () and s == () for p, s in face.damage())


def test_each_level_carries_its_kind_of_contamination():
    rng = random.Random(2)
    faces = {d: [make_face(d, rng) for _ in range(200)] for d in Dirt}

    def mean_particles(d):
        return sum(f.particle_count() for f in faces[d]) / len(faces[d])

    assert 0 < mean_particles(Dirt.LIGHT) < mean_particles(Dirt.HEAVY)
    assert mean_particles(Dirt.HEAVY) > 4 * mean_particles(Dirt.LIGHT)
    assert all(f.film_fibers() == 0 for d in (Dirt.LIGHT, Dirt.HEAVY, Dirt.DAMAGED) for f in faces[d])
    assert sum(f.film_fibers() for f in faces[Dirt.OILY]) > 0.7 * 12 * 200
    damaged = [f for f in faces[Dirt.DAMAGED] if any(p or s for p, s in f.damage())]
    assert len(damaged) > 0.95 * 200  # 15% per fiber and zone: nearly every face has some
    assert not any(p or s for d in Dirt if d is not Dirt.DAMAGED for f in faces[d] for p, s in f.damage())


def test_zone_b_collects_more_than_zone_a_in_proportion_to_its_area():
    rng = random.Random(3)
    counts = Counter()
    for _ in range(300):
        for fiber in make_face("heavy", rng).fibers:
            for z in ZONES:
                counts[z] += len(fiber.zone(z).particles)
    assert 10 < counts["b"] / counts["a"] < 40  # SM: the ring to 115 µm is ~20x the 25 µm disc


def test_particle_sizes_stay_within_the_profile():
    sizes = [
        s for f in [make_face("heavy", random.Random(4)) for _ in range(50)] for fb in f.fibers for s in fb.b.particles
    ]
    assert min(sizes) >= 0.5 and max(sizes) <= 30.0
    assert sum(s < 2 for s in sizes) > sum(s > 5 for s in sizes)  # small grains outnumber large


def test_fiber_types_and_counts():
    face = make_face("light", random.Random(5), fiber_type="MM_PC", fibers=24)
    assert face.fiber_type is FiberType.MM_PC and len(face.fibers) == 24
    with pytest.raises(ValueError, match="12 or 24 fibers, not 8"):
        EndFace.clean("SM_PC", 8)
    assert [EndFace.column(i) for i in (0, 11, 12, 23)] == [0, 11, 0, 11]


def test_the_population_mix_is_drawn_in_its_proportions():
    rng = random.Random(6)
    n = 20_000
    seen = Counter(pick_dirt(rng) for _ in range(n))
    for dirt, share in POPULATION_MIX.items():
        sigma = (share * (1 - share) / n) ** 0.5
        assert abs(seen[dirt] / n - share) < 4 * sigma, dirt


def test_the_mix_is_configurable_and_checked():
    rng = random.Random(7)
    assert {d for d, _ in population(50, rng, mix={Dirt.HEAVY: 1.0})} == {Dirt.HEAVY}
    out = population(30, rng, mix={Dirt.CLEAN: 1, Dirt.OILY: 1}, fibers=24)
    assert {d for d, _ in out} == {Dirt.CLEAN, Dirt.OILY} and all(len(f.fibers) == 24 for _, f in out)
    with pytest.raises(ValueError, match="non-negative weights"):
        pick_dirt(rng, {Dirt.CLEAN: -1, Dirt.LIGHT: 2})
    with pytest.raises(ValueError, match="positive sum"):
        pick_dirt(rng, {})
