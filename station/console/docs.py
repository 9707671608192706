"""docs/console.md, generated from the registry so that `help` and the manual never differ."""

from __future__ import annotations

from . import inspection_commands, trace_commands  # noqa: F401  (each registers its commands: one module per feature)
from .commands import REGISTRY

INTRO = """# Maintenance console

Generated from `station/console/commands.py` by `station console-doc`; `help` and
`help <command>` on the console print the same texts. A test fails when this file is stale.

## Connecting

- On the Pi: the serial console `/dev/serial0` at 115200 8N1 (configurable: `[console] port`,
  `baud`). From a laptop with a USB-serial adapter on GPIO 14/15:
  `python -m serial.tools.miniterm --echo /dev/ttyUSB0 115200`,
  `picocom -b 115200 --echo /dev/ttyUSB0` or `screen /dev/ttyUSB0 115200`.
- Simulated bench: `station sim` shows `maintenance console: ...` (the first lines of its live
  view's event log, or printed in line mode); `station sim --headless`
  prints `console: <pty>` and `bench: <pty>`. Attach to that path the same way:
  `python -m serial.tools.miniterm --echo <pty> 115200`, `picocom -b 115200 --echo <pty>` or
  `screen <pty> 115200`. `status` and the audit name the port you are on: the station's own
  device on the Pi (`/dev/serial0`), the pty you attached to in the simulator.
- Optionally on loopback TCP (`[console] tcp_port`): `socket://127.0.0.1:<port>` in pyserial,
  `TCPIP::127.0.0.1::<port>::SOCKET` in PyVISA.

No terminal option is needed for line endings (no `--imap`, no `--omap`): see Framing. The
console does not echo what you type (scripts do not want it), so start miniterm and picocom
with `--echo` to see your typing. screen has no local echo: there you type blind and see only
the answers; use picocom or miniterm to see both.

## Framing

Lines end in LF, CR LF or CR, at most 256 bytes of UTF-8; commands are case-insensitive.
**Answers end the way your line ended**: a line ending in LF is answered with LF, as SCPI
instruments answer; a line ending in CR or CR LF, which is what a terminal sends when you press
Enter (picocom, screen, minicom, PuTTY: CR; miniterm: CR LF), is answered with CR LF, so the
terminal starts each answer line at the left margin instead of drawing a staircase. Lines
streamed by `sensors <seconds>` and `watch` end like the command that started them. In PyVISA
give `read_termination` and `write_termination` the same value, `"\\n"` (the usual) or
`"\\r\\n"`: PyVISA strips only the termination it was given, so a script that writes CR LF but
reads up to LF would keep a CR at the end of every answer.

- A **query** (ends in `?`) answers exactly one line: its value, or `ERR <code> <message>`.
- Any **other command** answers zero or more lines, then exactly one final line: `OK`
  (perhaps followed by text) or `ERR <code> <message>`.
- Every error also goes onto an error queue (16 entries, IEEE 488.2 style) read with
  `SYST:ERR?` as `<code>,"<message>"`, `0,"No error"` when empty; `*CLS` empties it.

Error codes: -100 command error, -102 syntax error (also invalid UTF-8, control characters
and too many parameters), -109 missing parameter (`login` without a PIN, `jog` without a
count), -113 unknown command, -200 execution error, -203 command protected (log in first) or
locked out, -221 not possible in the current state, -222 value out of range, -240 hardware
error (jam, no drop), -310 too many commands (flood), -350 error queue overflow, -363 line
longer than 256 bytes.

## Access

Read-only commands are open. Commands marked **login** move hardware, change the
configuration, reset counters or clear faults: `login <PIN>` first. The PIN is stored only
as a salted scrypt hash; set it on the station with `station pin set` (installation). After
three wrong PINs each further attempt on that port waits 2, 4, 8 ... up to 300 seconds
(`locked out for N s`, N rounded up). A session idle for `[console] idle_logout_s` (300 s) is
logged out, and so is one whose serial device disappears (a USB adapter unplugged); a plain
3-wire UART cannot tell that a cable was pulled, so log out when you leave. Every protected
action is audited with the port it came from: `audit` on the console, and
`station records --audit --format csv|json` on the station exports the whole audit.

## Configuration changes

`config set` validates a value, saves it in the station's database and applies it at once
where that is safe (swipe, guide pins, thresholds) or from the next start (pins, wheel,
console). It is checked against the other values, as the next start will build them, so a
saved change can never keep the station from starting. Saved changes take precedence over the
configuration file until `config reset <section.key>` (or `config reset all`) hands a value
back to the file; `config show` shows the values in effect and lists the console's changes
(marking those waiting for the next start), and the audit (`audit`) shows who changed what.
If the file is edited so that a saved change no longer fits, the station starts on the file
alone, in a start-up fault that names the change; `config reset` repairs it.

## Example

```
> *IDN?
Fibreclean Labs,MPO-CS1,SIM-0001,0.1.0
> jog 3
ERR -203 Command protected; `jog <positions>` needs `login <PIN>`
> login 4711
OK logged in; idle sessions log out after 300 s
> jog 3
wheel: 3 of 3 positions confirmed in 192 steps (0.271 s)
OK
> STAT?
{"schema":1,"kind":"status","state":"idle","mode":"dry","cassette":"standard","ribbon_remaining":1491,...}
> SYST:ERR?
-203,"Command protected; `jog <positions>` needs `login <PIN>`"
> SYST:ERR?
0,"No error"
> watch 30
2026-12-01T18:42:31.576Z state {"schema":1,"kind":"state","state":"identifying"}
2026-12-01T18:42:31.576Z attempt {"schema":1,"kind":"attempt","id":1,"mode":"dry"}
2026-12-01T18:42:31.726Z state {"schema":1,"kind":"state","state":"advancing"}
2026-12-01T18:42:31.996Z advanced {"schema":1,"kind":"advanced","positions":3,"steps":192,"seconds":0.2706}
2026-12-01T18:42:31.996Z state {"schema":1,"kind":"state","state":"swipe_ready"}
2026-12-01T18:42:31.996Z swipe_now {"schema":1,"kind":"swipe_now","id":1,"deadline_s":15.0}
2026-12-01T18:42:34.063Z state {"schema":1,"kind":"state","state":"swiping"}
2026-12-01T18:42:35.243Z result {"schema":1,"kind":"result","id":1,"outcome":"cleaned","reason":"",...}
2026-12-01T18:42:35.243Z state {"schema":1,"kind":"state","state":"done"}
2026-12-01T18:42:36.243Z state {"schema":1,"kind":"state","state":"idle"}
OK 10 events in 30 s
```

A script reads `watch` line by line up to the final `OK`: `time, kind, data = line.split(" ", 2)`,
then `json.loads(data)` (the same JSON as the station's typed events, `station.events.from_json`).

## Commands
"""


def document() -> str:
    parts = [INTRO]
    for cmd in REGISTRY.values():
        parts.append(f"\n### `{cmd.usage}`{'  (login)' if cmd.protected else ''}\n\n{cmd.help}\n")
    return "".join(parts)
