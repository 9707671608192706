"""The console's inspection commands (docs/design.md section 10): the software driving an
inspection probe on a lab PC sends its verdict here, SCPI style; a maintenance engineer
releases a quarantined connector."""

from __future__ import annotations

from ..domain import Verdict
from ..inspection import detail_json
from . import protocol as P
from .commands import CommandError, Context, Reply, register, service_reply

WORDS = {"pass": Verdict.PASS, "fail": Verdict.FAIL}


@register(
    "insp:res",
    "INSP:RES PASS|FAIL [JSON]",
    "An inspection verdict from the probe's software, with its findings as JSON if any (per fiber, "
    "zones A and B: defects and scratches by size). Answered with the attempt and connector it applies to "
    "and what comes next; with nothing awaiting inspection it is an error.",
)
def insp_res(ctx: Context, args: list[str]) -> Reply:
    if not args:
        raise CommandError(P.MISSING_PARAMETER, "Missing parameter; usage: INSP:RES PASS|FAIL [JSON]")
    verdict = WORDS.get(args[0].lower())
    if verdict is None:
        raise CommandError(P.DATA_OUT_OF_RANGE, f"Data out of range; the verdict is PASS or FAIL, not {args[0]!r}")
    try:
        detail = detail_json(args[1:])
    except ValueError as exc:
        raise CommandError(P.DATA_OUT_OF_RANGE, f"Data out of range; the findings are not JSON ({exc})") from None
    inspection = ctx.controller.cycle.inspection
    result = ctx.call(lambda: inspection.verdict(verdict, detail, ctx.source))
    if not result.ok:
        raise CommandError(P.SETTINGS_CONFLICT, f"Settings conflict; {result.error}")
    return Reply(result.lines)


@register("insp:res?", "INSP:RES?", "The last inspection verdict, what it applied to and what came next (one line).")
def insp_res_query(ctx: Context, args: list[str]) -> str:
    if args:
        raise CommandError(P.SYNTAX_ERROR, "Syntax error; usage: INSP:RES?")
    inspection = ctx.controller.cycle.inspection
    return str(ctx.call(lambda: inspection.last))


@register("quarantine?", "quarantine?", "Connectors in quarantine now (refused until released), one line.")
def quarantine_query(ctx: Context, args: list[str]) -> str:
    if args:
        raise CommandError(P.SYNTAX_ERROR, "Syntax error; usage: quarantine?")
    inspection = ctx.controller.cycle.inspection
    listed = ctx.call(inspection.quarantined)
    return ", ".join(listed) if listed else "none"


@register(
    "quarantine release",
    "quarantine release <connector>",
    "Release a repaired or replaced connector from quarantine: its inspection loop begins again (audited).",
    protected=True,
)
def quarantine_release(ctx: Context, args: list[str]) -> Reply:
    if len(args) != 1:
        raise CommandError(P.MISSING_PARAMETER, "Missing parameter; usage: quarantine release <connector>")
    inspection = ctx.controller.cycle.inspection
    return service_reply(ctx.call(lambda: inspection.release(args[0], ctx.source)))
