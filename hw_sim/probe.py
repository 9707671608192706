"""A simulated MPO inspection probe: the operator inserts the connector, the probe's software
grades the physical end face with the IEC 61300-3-35 tables (iec.py) and reports PASS or FAIL
with its per-fiber findings. It sees the face as it is, never what the firmware recorded.

How a report reaches the station (a console line, a GPIO pulse) is not the probe's business:
whoever wires it passes `on_report`, which gets every report as it is made.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from station.console.protocol import MAX_LINE

from .endface import EndFace, FiberType
from .iec import TABLES, FiberLimits, grade


@dataclass(frozen=True)
class ProbeReport:
    """One inspection: `verdict` "PASS" or "FAIL", `detail` the findings as the probe's software
    sends them (iec.Verdict.to_json()), `failures` why it failed, in words."""

    verdict: str
    detail: dict[str, Any]
    failures: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.verdict == "PASS"

    def console_line(self) -> str:
        """The report as the console command of issue 14, `INSP:RES PASS|FAIL <JSON>`, in one line
        the console accepts (at most `MAX_LINE` bytes): a compact summary, not the whole grade.
        `{"fibers":12,"failed":[3,7],"zones":{"3":{"A":[2,0]},"7":{"B":[0,1]}}}`: the fibers
        graded, the failing ones, and for each failing fiber, as long as the line has room, its
        failing zones' [defects, scratches] counts; `"more":N` says how many failing fibers'
        counts did not fit (the full findings stay in `detail`, the probe's own record)."""
        fibers = self.detail.get("fibers", [])
        failed = [f for f in fibers if not f.get("pass", True)]
        summary: dict[str, Any] = {"fibers": len(fibers), "failed": [f["fiber"] for f in failed]}
        zones: dict[str, dict[str, list[int]]] = {}
        for k, f in enumerate(failed):
            counts = {
                z.upper(): [sum(f[f"zone_{z}"]["defects"].values()), sum(f[f"zone_{z}"]["scratches"].values())]
                for z in ("a", "b")
                if not f[f"zone_{z}"].get("pass", True)
            }
            trial = {**summary, "zones": {**zones, str(f["fiber"]): counts}, "more": len(failed) - k - 1}
            if len(self._line(trial).encode()) > MAX_LINE:
                break
            zones[str(f["fiber"])] = counts
        if zones:
            summary["zones"] = zones
        if len(zones) < len(failed):
            summary["more"] = len(failed) - len(zones)
        return self._line(summary)

    def _line(self, summary: dict[str, Any]) -> str:
        return f"INSP:RES {self.verdict} {json.dumps(summary, separators=(',', ':'))}"

    def summary(self) -> str:
        """One line for a person: the verdict, and the first reasons when it failed."""
        if self.passed:
            return f"probe: PASS ({len(self.detail['fibers'])} fibers)"
        more = f" (+{len(self.failures) - 3} more)" if len(self.failures) > 3 else ""
        return "probe: FAIL: " + "; ".join(self.failures[:3]) + more


class SimProbe:
    """Grades a face on request; `reports` keeps every report it made, in order."""

    def __init__(
        self,
        on_report: Callable[[ProbeReport], None] | None = None,
        *,
        tables: Mapping[FiberType, FiberLimits] = TABLES,
    ) -> None:
        self.on_report = on_report
        self.tables = tables
        self.reports: list[ProbeReport] = []

    def inspect(self, face: EndFace) -> ProbeReport:
        verdict = grade(face, self.tables)
        report = ProbeReport(verdict.verdict, verdict.to_json(), tuple(verdict.failures()))
        self.reports.append(report)
        if self.on_report is not None:
            self.on_report(report)
        return report
