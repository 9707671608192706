"""Readable lines for what the station does (used by the demo, scenarios and interactive use)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from station.loop import EventLoop


def printer(loop: EventLoop, out: TextIO, *, states: bool = True) -> Callable[[str, dict[str, Any]], None]:
    def show(kind: str, data: dict[str, Any]) -> None:
        t = f"[{loop.now():9.3f} s]"
        if kind == "state" and states:
            text = f"state -> {data['state']}"
        elif kind == "result":
            what = data["outcome"].upper()
            who = " ".join(x for x in (data.get("gender"), data.get("mode")) if x)
            extra = f", pass {data['pass_s']:.2f} s" if data.get("pass_s") else ""
            reason = f": {data['reason']}" if data["reason"] else ""
            text = f"RESULT {what} ({who}{extra}){reason}"
        elif kind == "advanced":
            text = f"wheel advanced {data['positions']} positions in {data['steps']} steps ({data['seconds']:.3f} s)"
        elif kind == "swipe_now":
            text = f"SWIPE NOW (within {data['deadline_s']:g} s)"
        elif kind == "fault":
            text = f"FAULT {data['code']}: {data['detail']}"
        elif kind == "fault_cleared":
            text = f"fault {data['code']} cleared"
        elif kind == "warning":
            text = f"WARNING {data['text']}"
        elif kind == "cassette":
            text = f"new cassette #{data['id']} ({data['type']}, {data['capacity']} positions)"
        elif kind == "clean_mode":
            text = f"this clean goes on {data['mode']}: {data['why']}"
        elif kind == "recovered":
            text = f"recovered: attempts {data['interrupted']} closed as interrupted"
        else:
            return
        print(f"{t} {text}", file=out, flush=True)

    return show
