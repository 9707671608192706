"""The console's traceability commands (docs/design.md section 9): a code typed or pasted at the
console counts as a scan, for a station without a scanner or a lab script."""

from __future__ import annotations

from . import protocol as P
from .commands import CommandError, Context, Reply, register


@register(
    "scan",
    "scan <code>",
    "A scanned code, typed: an operator badge, a cassette label or a connector (classified by the "
    "[traceability] patterns). A connector code names the next connector presented.",
)
def scan(ctx: Context, args: list[str]) -> Reply:
    if not args:
        raise CommandError(P.MISSING_PARAMETER, "Missing parameter; usage: scan <code>")
    code = " ".join(args)
    result = ctx.call(lambda: ctx.controller.trace.scan(code, ctx.source))
    if not result.ok and result.conflict:
        raise CommandError(P.SETTINGS_CONFLICT, f"Settings conflict; {result.text}")
    if not result.ok:
        raise CommandError(P.DATA_OUT_OF_RANGE, f"Data out of range; {result.text}")
    return Reply([result.text])


@register(
    "scan?",
    "scan?",
    "What the next clean is tied to: the operator on duty, the connector scanned and the cassette's label.",
)
def scan_query(ctx: Context, args: list[str]) -> str:
    if args:
        raise CommandError(P.SYNTAX_ERROR, "Syntax error; usage: scan?")
    c = ctx.controller
    who, label = ctx.call(lambda: (c.trace.identity(), c.trace.cassette_label()))
    connector = "none"
    if who.connector is not None:
        connector = who.connector + (f" (cable {who.cable}" + (f", end {who.end})" if who.end else ")"))
    return f"operator {who.operator or 'none'}; connector {connector}; cassette {label or 'not labelled'}"
