"""IEC 61300-3-35 grading of MT end faces (hw_sim.iec) against hand-made faces at the bounds of
the table in DESIGN.md section 10: each limit passes at its count or size and fails one past it."""

from __future__ import annotations

import pytest

from hw_sim.endface import EndFace, Fiber, FiberType, Zone, zone_area_um2
from hw_sim.iec import film_defect_um, grade


def face_with(fiber_type: str, zone: str, *, particles=(), pits=(), scratches=(), fibers=12, on_fiber=1) -> EndFace:
    """A clean face with the given features in one zone of one fiber (1-based)."""
    face = EndFace.clean(fiber_type, fibers)
    z = face.fibers[on_fiber - 1].zone(zone)
    z.particles = list(particles)
    z.pits = tuple(pits)
    z.scratches = tuple(scratches)
    return face


BOUNDS = [
    # fiber type, zone, defects (particles, µm), scratches (width µm), PASS?
    ("SM_PC", "a", [], [], True),
    ("SM_PC", "a", [1.0], [], False),  # zone A: no defects at all
    ("SM_PC", "a", [0.5], [], False),
    ("SM_PC", "a", [], [0.5], False),  # ... and no scratches
    ("SM_PC", "b", [1.99] * 50, [], True),  # < 2 µm: any number
    ("SM_PC", "b", [2.0] * 5, [], True),  # 2-5 µm: five
    ("SM_PC", "b", [2.0] * 6, [], False),  # ... not six (2.0 is in the 2-5 class)
    ("SM_PC", "b", [3.0, 4.0, 5.0, 2.5, 4.9], [], True),
    ("SM_PC", "b", [3.0, 4.0, 5.0, 2.5, 4.9, 3.3], [], False),
    ("SM_PC", "b", [5.0], [], True),  # 5.0 is still 2-5
    ("SM_PC", "b", [5.01], [], False),  # none over 5
    ("SM_PC", "b", [], [3.0] * 20, True),  # scratches <= 3 µm: any
    ("SM_PC", "b", [], [3.01], False),  # none wider
    ("SM_APC", "a", [], [3.0] * 4, True),  # zone A: four scratches <= 3 µm
    ("SM_APC", "a", [], [3.0] * 5, False),
    ("SM_APC", "a", [], [3.5], False),
    ("SM_APC", "a", [1.0], [], False),  # no defects
    ("SM_APC", "b", [2.0] * 5 + [1.0] * 9, [2.0, 3.0], True),  # zone B as SM PC
    ("SM_APC", "b", [2.0] * 6, [], False),
    ("MM_PC", "a", [5.0] * 4, [3.0] * 9, True),  # zone A: four defects <= 5 µm, scratches <= 3 any
    ("MM_PC", "a", [5.0] * 5, [], False),
    ("MM_PC", "a", [5.1], [], False),
    ("MM_PC", "a", [], [3.1], False),
    ("MM_PC", "b", [4.99] * 40 + [5.0, 7.0, 10.0, 6.0, 8.0], [5.0] * 7, True),  # < 5 any, 5 of 5-10
    ("MM_PC", "b", [5.0, 7.0, 10.0, 6.0, 8.0, 9.0], [], False),
    ("MM_PC", "b", [10.1], [], False),
    ("MM_PC", "b", [], [5.1], False),
]


@pytest.mark.parametrize("fiber_type,zone,defects,scratches,passes", BOUNDS)
def test_each_limit_holds_at_its_bound_and_fails_past_it(fiber_type, zone, defects, scratches, passes):
    verdict = grade(face_with(fiber_type, zone, particles=defects, scratches=scratches))
    assert verdict.passed is passes
    assert verdict.verdict == ("PASS" if passes else "FAIL")
    assert (verdict.failures() == []) is passes


def test_a_pit_is_a_defect_like_a_particle():
    assert grade(face_with("SM_PC", "b", pits=[2.0] * 5)).passed
    assert not grade(face_with("SM_PC", "b", pits=[2.0] * 5, particles=[3.0])).passed
    assert not grade(face_with("SM_PC", "a", pits=[0.8])).passed


def test_an_oily_film_is_graded_as_one_defect_the_size_of_what_it_covers():
    face = EndFace.clean("SM_PC")
    face.fibers[0].b.film_coverage = 0.001  # ~0.1% of zone B: a 3.6 µm smear
    assert 2.0 < film_defect_um(face.fibers[0].b, FiberType.SM_PC, "b") < 5.0
    assert grade(face).passed
    face.fibers[0].b.film_coverage = 0.1
    assert film_defect_um(face.fibers[0].b, FiberType.SM_PC, "b") > 5.0
    assert not grade(face).passed
    face = EndFace.clean("SM_PC")
    face.fibers[0].a.film_coverage = 0.01  # any film on the core of a SM PC fiber
    assert not grade(face).passed
    assert film_defect_um(face.fibers[0].a, FiberType.SM_PC, "a") ** 2 == pytest.approx(
        4 * 0.01 * zone_area_um2(FiberType.SM_PC, "a") / 3.141592653589793
    )


@pytest.mark.parametrize("fibers", [12, 24])
def test_a_face_passes_only_if_every_fiber_passes(fibers):
    face = face_with("SM_PC", "a", particles=[1.5], fibers=fibers, on_fiber=fibers)
    verdict = grade(face)
    assert not verdict.passed
    assert [f.fiber for f in verdict.fibers if not f.passed] == [fibers]
    assert verdict.failures() == [f"fiber {fibers} zone A: 1 defect any µm (0 allowed)"]
    assert grade(EndFace.clean("SM_PC", fibers)).passed


def test_the_json_form_is_what_a_probes_software_sends():
    face = face_with("SM_PC", "b", particles=[1.0, 2.5, 2.5, 6.0], scratches=[2.0], on_fiber=3)
    doc = grade(face).to_json()
    assert doc["verdict"] == "FAIL"
    assert doc["fiber_type"] == "SM_PC"
    assert [f["fiber"] for f in doc["fibers"]] == list(range(1, 13))
    third = doc["fibers"][2]
    assert third == {
        "fiber": 3,
        "zone_a": {"defects": {"any": 0}, "scratches": {"any": 0}, "pass": True},
        "zone_b": {"defects": {"<2": 1, "2-5": 2, ">5": 1}, "scratches": {"<=3": 1, ">3": 0}, "pass": False},
        "pass": False,
    }
    assert all(f["pass"] for i, f in enumerate(doc["fibers"]) if i != 2)


def test_grading_reads_the_face_and_changes_nothing():
    face = EndFace("SM_PC", [Fiber(Zone([1.0]), Zone([3.0], 0.2, 50.0, (2.0,), (1.0,))) for _ in range(12)])
    before = face.copy()
    grade(face)
    assert face == before
