"""The `station` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from . import __version__
from . import config as station_config
from .config import ConfigError
from .statelock import StateDirInUse
from .store import StoreError

DIAGRAM_PATH = Path("docs") / "state-machine.md"


def _load_config(path: str | None) -> station_config.Config:
    return station_config.load(path)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the station on real hardware."""
    from . import service
    from .drivers.pinfactory import NoGPIO

    config = _load_config(args.config)
    try:
        return service.run(config, args.state_dir)
    except NoGPIO as exc:
        print(f"station run: {exc}", file=sys.stderr)
        return 2


def cmd_sim(args: argparse.Namespace) -> int:
    """Run the firmware against the simulated bench."""
    config = _load_config(args.config)
    if args.help_actions:
        from hw_sim.actions import usage

        print(usage())
        return 0
    if args.demo:
        from hw_sim import demo

        return 0 if demo.run(sys.stdout, args.state_dir, config) else 1
    if args.population is None and (args.seed is not None or args.mode is not None):
        print("station sim: --seed and --mode go with --population N", file=sys.stderr)
        return 2
    if args.population is not None:
        from hw_sim import population

        return population.main(
            config,
            args.population,
            seed=args.seed,
            mode=args.mode,
            state_dir=args.state_dir,
            out=sys.stdout,
            err=sys.stderr,
        )
    if args.scenario:
        from hw_sim import scenario

        try:
            return 0 if scenario.run(args.scenario, sys.stdout, args.state_dir) else 1
        except (scenario.ScenarioError, ConfigError) as exc:
            print(f"station sim: {exc}", file=sys.stderr)
            return 2
    from hw_sim.world_file import WorldFileError

    try:
        if args.headless:
            from hw_sim import headless

            return headless.run(config, args.state_dir)
        from hw_sim import interactive

        return interactive.run(config, args.state_dir, plain=args.plain)
    except WorldFileError as exc:  # sim-world.json in the state directory (the bench it keeps)
        print(f"station sim: {exc}", file=sys.stderr)
        return 2


def cmd_diagram(args: argparse.Namespace) -> int:
    """Write the state machine diagram (mermaid) generated from the controller."""
    from . import diagram

    path = Path(args.output)
    diagram.write(path)
    print(f"wrote {path}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """`config check FILE`; `config show [SECTION] [--config FILE]`, the console's `config show`
    text for the file's configuration (`config show FILE`, the older form, still works)."""
    from .console.commands import config_text

    if args.action == "check":
        file = args.name or args.config
        if not file:
            print("station config check: name the file to check", file=sys.stderr)
            return 2
        station_config.load(file)
        print(f"{file}: configuration OK")
        return 0
    file, section = args.config, args.name
    sections = station_config.to_dict(station_config.Config())
    if section is not None and section.lower() not in sections and file is None and Path(section).is_file():
        file, section = section, None  # the older form, `station config show FILE`
    try:
        text = config_text(_load_config(file), section)
    except ValueError as exc:
        print(f"station config show: no section {section!r}; {exc} (a file goes after --config)", file=sys.stderr)
        return 2
    print(text, end="")
    return 0


def _db_path(args: argparse.Namespace, config: station_config.Config) -> Path:
    """The station database these arguments name: --state-dir, else the configuration's, else
    the default for this machine."""
    from .app import DB_NAME, default_state_dir

    on_pi = Path("/var/lib/mpo-station").exists()
    return Path(args.state_dir or config.station.state_dir or default_state_dir(on_pi=on_pi)) / DB_NAME


def _existing_db(args: argparse.Namespace, config: station_config.Config) -> Path | None:
    path = _db_path(args, config)
    if not path.exists():
        print(
            f"station {args.command}: no database at {path}; name the state directory with --state-dir", file=sys.stderr
        )
        return None
    return path


def cmd_backup(args: argparse.Namespace) -> int:
    """Copy the database consistently, even while the station runs."""
    from .store import Store

    config = _load_config(args.config)
    path = _existing_db(args, config)
    if path is None:
        return 2
    destination = Path(args.destination)
    if destination.exists():
        print(f"station backup: {destination} exists; choose a new file name", file=sys.stderr)
        return 2
    problem = _unwritable_folder(destination.parent)
    if problem:
        print(f"station backup: cannot write {destination}: {problem}", file=sys.stderr)
        return 2
    store = Store(path, readonly=True)
    try:
        store.backup(destination)
    except StoreError as exc:  # e.g. the drive is full or was pulled out during the copy
        destination.unlink(missing_ok=True)  # never leave half a backup that looks like one
        reason = exc.__cause__ or exc
        print(f"station backup: could not write {destination}: {reason}; nothing was backed up", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(f"backed up {path} to {destination}")
    return 0


def _unwritable_folder(folder: Path) -> str | None:
    """Why a new file cannot be made in `folder`, in words that say what to do (None: it can)."""
    if not folder.exists():
        return (
            f"the folder {folder} does not exist (is the drive mounted?); create it or mount the drive, then try again"
        )
    if not folder.is_dir():
        return f"{folder} is not a folder; name a new file in an existing folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"this user may not write in {folder}; choose another folder, or run as a user who may"
    return None


def _record_filter_options(p: argparse.ArgumentParser) -> None:
    """The options that choose clean records (station records and station fleet records)."""
    p.add_argument("--result", choices=("cleaned", "failed", "rejected", "interrupted"), help="only this outcome")
    p.add_argument("--connector", metavar="CODE", help="only attempts on this connector (its code, e.g. CBL-0001-A)")
    p.add_argument("--cable", metavar="CABLE", help="only attempts on this cable (any end, e.g. CBL-0001)")
    p.add_argument("--operator", metavar="BADGE", help="only attempts by this operator (the badge scanned)")


def _broker_options(p: argparse.ArgumentParser, who: str) -> None:
    """How a supervisor's tool reaches the broker (station fleet watch and collect)."""
    p.add_argument("--broker", required=True, metavar="URL", help="mqtt://host:port or mqtts://host:port (TLS)")
    p.add_argument("--username", metavar="NAME", help=f"{who}'s user name on the broker")
    p.add_argument("--password-file", metavar="FILE", help="its password, in a file only you can read (chmod 600)")
    p.add_argument("--ca-file", metavar="FILE", help="mqtts: the CA that signed the broker's certificate")


def _record_filters(args: argparse.Namespace) -> list[str]:
    """The options given that choose clean records (for the messages that say where they apply)."""
    given = (("--result", args.result), ("--connector", args.connector), ("--cable", args.cable))
    return [option for option, value in (*given, ("--operator", args.operator)) if value is not None]


def cmd_records(args: argparse.Namespace) -> int:
    """Export clean records, the cassette history or the audit (CSV or JSON) and print a summary."""
    from . import records
    from .store import Store

    if args.cassettes and not args.format:
        print("station records: --cassettes exports the cassette history; choose --format csv or json", file=sys.stderr)
        return 2
    if args.audit and not args.format:
        print("station records: --audit exports the audit; choose --format csv or json", file=sys.stderr)
        return 2
    chosen = _record_filters(args)
    if args.audit and chosen:
        print(
            f"station records: {' and '.join(chosen)} choose{'s' if len(chosen) == 1 else ''} clean records; "
            "the audit (--audit) is chosen by --since and --until",
            file=sys.stderr,
        )
        return 2
    if args.cassettes and (args.since or args.until or chosen):
        print(
            "station records: --since, --until, --result, --connector, --cable and --operator choose clean "
            "records; the cassette history (--cassettes) is exported whole",
            file=sys.stderr,
        )
        return 2
    config = _load_config(args.config)
    path = _existing_db(args, config)
    if path is None:
        return 2
    try:
        since = records.parse_time(args.since) if args.since else None
        until = records.parse_time(args.until) if args.until else None
    except ValueError as exc:
        print(f"station records: {exc}", file=sys.stderr)
        return 2
    if not args.format and not args.audit and not args.cassettes and (chosen or args.since or args.until):
        named = chosen + [o for o, v in (("--since", args.since), ("--until", args.until)) if v]
        print(
            f"station records: {' and '.join(named)} choose{'s' if len(named) == 1 else ''} the records to "
            "export: add --format csv or json (without --format, station records prints the whole summary)",
            file=sys.stderr,
        )
        return 2
    store = Store(path, fluid_capacity=config.dispenser.reservoir_drops, readonly=True)
    try:
        if args.format:
            choice = dict(
                cassettes=args.cassettes,
                audit=args.audit,
                since=since,
                until=until,
                outcome=args.result,
                connector=args.connector,
                cable=args.cable,
                operator=args.operator,
            )
            what = "cassettes" if args.cassettes else "audit entries" if args.audit else "records"
            if args.output and args.output != "-":
                with open(args.output, "w", encoding="utf-8", newline="") as out:
                    n = records.export(store, args.format, out, **choice)
                print(f"wrote {n} {what} to {args.output}", file=sys.stderr)
            else:
                records.export(store, args.format, sys.stdout, **choice)
        if not args.format or (args.output and args.output != "-"):
            print(records.summary(store, config.wheel.positions_per_clean))
    finally:
        store.close()
    return 0


def cmd_certificate(args: argparse.Namespace) -> int:
    """Write the cleaning certificate for one cable (HTML, or JSON with --format json)."""
    import time

    from . import certificate
    from .store import Store

    if not args.cable.strip():
        print("station certificate: name the cable, e.g. station certificate CBL-0001", file=sys.stderr)
        return 2
    config = _load_config(args.config)
    path = _existing_db(args, config)
    if path is None:
        return 2
    output = Path(args.output) if args.output and args.output != "-" else None
    if output is not None:
        problem = _unwritable_folder(output.parent)
        if problem:
            print(f"station certificate: cannot write {output}: {problem}", file=sys.stderr)
            return 2
    store = Store(path, fluid_capacity=config.dispenser.reservoir_drops, readonly=True)
    try:
        cert = certificate.build(store, args.cable, serial_number=config.station.serial_number, issued_at=time.time())
    except certificate.NoAttempts as exc:
        print(f"station certificate: {exc}; no certificate written", file=sys.stderr)
        return 1
    finally:
        store.close()
    text = certificate.write_json(cert) if args.format == "json" else certificate.write_html(cert)
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"station certificate: could not write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    attempts = sum(len(end.attempts) for end in cert.ends)
    print(
        f"wrote certificate {cert.number} for cable {cert.cable} ({attempts} attempt{'s' if attempts != 1 else ''}; "
        f"{cert.statement}) to {output}",
        file=sys.stderr,
    )
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    """Set the maintenance PIN (part of installation). Reads it from the terminal, or one line
    of standard input when that is not a terminal (install scripts)."""
    import getpass

    from .app import open_store
    from .console.access import hash_pin
    from .console.commands import PIN_KEY

    config = _load_config(args.config)
    if args.action == "status":  # looks only: creates no state directory and no database
        import sqlite3

        from .store import Store, StoreError

        path = _db_path(args, config)
        if not path.exists():
            print(f"no maintenance PIN is set (no database at {path} yet)")
            return 1
        try:
            store = Store(path, fluid_capacity=config.dispenser.reservoir_drops, readonly=True)
        except StoreError as exc:
            print(f"station pin: {exc}", file=sys.stderr)
            return 2
        try:
            is_set = store.setting(PIN_KEY) is not None
        except (StoreError, sqlite3.Error) as exc:  # e.g. a database from before settings existed
            print(f"station pin: cannot read {path}: {exc}", file=sys.stderr)
            return 2
        finally:
            store.close()
        print("a maintenance PIN is set" if is_set else "no maintenance PIN is set")
        return 0 if is_set else 1
    try:
        if sys.stdin.isatty():
            pin = getpass.getpass("new maintenance PIN: ")
            if getpass.getpass("again: ") != pin:
                print("station pin: the two entries differ; nothing changed", file=sys.stderr)
                return 2
        else:
            pin = sys.stdin.readline().strip()
        hashed = hash_pin(pin)
    except ValueError as exc:
        print(f"station pin: {exc}; nothing changed", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, EOFError) as exc:  # Ctrl-C, or Ctrl-D at a prompt
        print("\nstation pin: cancelled, no PIN changed", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 1
    store = open_store(config, args.state_dir, on_pi=Path("/var/lib/mpo-station").exists())
    try:
        import time as _time

        store.set_setting(PIN_KEY, hashed, _time.time(), source="station pin set")
    finally:
        store.close()
    print("maintenance PIN set")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """A checklist for the technician on the Pi."""
    from . import doctor

    checks = doctor.run_checks(args.config, args.state_dir)
    print(doctor.report(checks))
    return 0 if all(c.ok for c in checks) else 1


def cmd_wiring(args: argparse.Namespace) -> int:
    """Write docs/wiring.md from the pin data the firmware uses."""
    from . import wiring

    config = _load_config(args.config)
    if args.output == "-":
        sys.stdout.write(wiring.document(config))
        return 0
    wiring.write(args.output, config)
    print(f"wrote {args.output}")
    return 0


def cmd_fleet_watch(args: argparse.Namespace) -> int:
    """The live floor from the broker (docs/fleet.md): one row per station seen."""
    from . import fleet_watch

    return fleet_watch.run(
        args.broker, username=args.username, password_file=args.password_file, ca_file=args.ca_file, once=args.once
    )


def cmd_fleet_collect(args: argparse.Namespace) -> int:
    """Every attempt and event of every station into one database, exactly once (docs/fleet.md)."""
    from . import fleet_collect

    return fleet_collect.collect(
        args.broker,
        args.db,
        username=args.username,
        password_file=args.password_file,
        ca_file=args.ca_file,
        client_id=args.client_id,
    )


def cmd_fleet_records(args: argparse.Namespace) -> int:
    """The collector's database exported as `station records` does, over the whole floor."""
    from . import fleet_collect, records

    chosen = _record_filters(args)
    if args.events and chosen:
        print(
            f"station fleet records: {' and '.join(chosen)} choose{'s' if len(chosen) == 1 else ''} attempts; "
            "the events (--events) are chosen by --station, --since and --until",
            file=sys.stderr,
        )
        return 2
    if args.events and not args.format:
        print("station fleet records: --events exports the events; choose --format csv or json", file=sys.stderr)
        return 2
    try:
        choice = fleet_collect.Choice(
            station=args.station,
            since=records.parse_time(args.since) if args.since else None,
            until=records.parse_time(args.until) if args.until else None,
            outcome=args.result,
            connector=args.connector,
            cable=args.cable,
            operator=args.operator,
        )
        if args.output and args.output != "-" and args.format:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                n = fleet_collect.export(args.db, args.format, out, events=args.events, choice=choice)
            print(f"wrote {n} {'events' if args.events else 'attempts'} to {args.output}", file=sys.stderr)
        else:
            fleet_collect.export(args.db, args.format, sys.stdout, events=args.events, choice=choice)
    except (ValueError, fleet_collect.CollectError) as exc:
        print(f"station fleet records: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"station fleet records: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def cmd_console_doc(args: argparse.Namespace) -> int:
    from .console import docs

    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(docs.document(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="station", description="MPO/MTP connector cleaning station firmware")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log debug detail to stderr; -vv adds the state machine library's own (every callback)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", metavar="FILE", help="configuration file (TOML); defaults: the reference bench")
        p.add_argument("--state-dir", metavar="DIR", help="where the station database lives")

    p = sub.add_parser("run", help="run the station on a Raspberry Pi")
    common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sim", help="run the station against the simulated bench")
    common(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--demo", action="store_true", help="run the scripted demo and exit")
    mode.add_argument("--scenario", metavar="FILE", help="run a scenario file; exit 1 if an expectation fails")
    mode.add_argument(
        "--headless",
        action="store_true",
        help="real time, no prompt: print the console and bench port paths and run until SIGTERM/SIGINT",
    )
    mode.add_argument("--help-actions", action="store_true", help="list the simulator's actions")
    mode.add_argument(
        "--population",
        type=int,
        metavar="N",
        help="run N connectors with a realistic contamination mix through the inspection workflow in "
        "virtual time, then the same ones cleaned once without inspection, and print the yield table",
    )
    mode.add_argument(
        "--plain",
        action="store_true",
        help="interactive in line mode (typed commands, printed events) even at a terminal with the live view",
    )
    p.add_argument("--seed", type=int, metavar="S", help="--population: the population's seed (default 2026)")
    p.add_argument(
        "--mode",
        choices=("after", "first"),
        help="--population: the inspection workflow (default: the configuration's, else after)",
    )
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("records", help="export clean records as CSV or JSON and summarise them")
    common(p)
    p.add_argument("--format", choices=("csv", "json"), help="export format (default: only the summary)")
    p.add_argument("--output", "-o", metavar="FILE", help="write the export here (default: standard output)")
    p.add_argument(
        "--since",
        metavar="TIME",
        help="only attempts started (audit: entries made) at or after this ISO date/time (UTC)",
    )
    p.add_argument(
        "--until", metavar="TIME", help="only attempts started (audit: entries made) before this ISO date/time (UTC)"
    )
    _record_filter_options(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--cassettes",
        action="store_true",
        help="export the cassette history instead (every cassette: positions used, fits, declared, retired)",
    )
    which.add_argument(
        "--audit",
        action="store_true",
        help="export the audit instead (logins, maintenance, configuration changes, faults: who, from where)",
    )
    p.set_defaults(func=cmd_records)

    p = sub.add_parser(
        "certificate",
        help="write the cleaning certificate for one cable (printable HTML, or JSON)",
        description="Every attempt recorded on each end of the cable, the station and its firmware, and "
        "whether each end's last attempt cleaned it. Exit status 1 when the cable has no attempts.",
    )
    common(p)
    p.add_argument("cable", metavar="CABLE", help="the cable, as its connector codes name it (e.g. CBL-0001)")
    p.add_argument("--output", "-o", metavar="FILE", help="write the certificate here (default: standard output)")
    p.add_argument("--format", choices=("html", "json"), default="html", help="html (default, printable) or json")
    p.set_defaults(func=cmd_certificate)

    p = sub.add_parser("backup", help="copy the database consistently (safe while the station runs)")
    common(p)
    p.add_argument("destination", help="new file to write the copy to")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("pin", help="set the maintenance PIN for the console")
    common(p)
    p.add_argument("action", choices=("set", "status"), help="set: choose a new PIN; status: exit 0 if one is set")
    p.set_defaults(func=cmd_pin)

    p = sub.add_parser("doctor", help="check this machine can run the station, with a fix for each failure")
    common(p)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("wiring", help="write docs/wiring.md (table and header drawing) from the pin configuration")
    p.add_argument("--config", metavar="FILE", help="configuration file (TOML); defaults: the reference bench")
    p.add_argument("--output", default="docs/wiring.md", help="file to write (default docs/wiring.md; - for stdout)")
    p.set_defaults(func=cmd_wiring)

    p = sub.add_parser("console-doc", help="write docs/console.md from the console's own help texts")
    p.add_argument("--output", default="docs/console.md")
    p.set_defaults(func=cmd_console_doc)

    p = sub.add_parser("diagram", help="write the state machine diagram")
    p.add_argument("--output", default=str(DIAGRAM_PATH), help=f"file to write (default {DIAGRAM_PATH})")
    p.set_defaults(func=cmd_diagram)

    p = sub.add_parser("fleet", help="the floor of stations over MQTT (docs/fleet.md)")
    fleet = p.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")
    p = fleet.add_parser(
        "watch",
        help="a live table of every station seen on the broker",
        description="One row per station: online, state, cassette and fluid left, last result, fault, backlog, "
        "last seen. Redrawn every second at a terminal; otherwise printed once after --once seconds (default 3).",
    )
    _broker_options(p, "the watcher")
    p.add_argument("--once", type=float, metavar="SECONDS", help="print the table after SECONDS and exit")
    p.set_defaults(func=cmd_fleet_watch)
    p = fleet.add_parser(
        "collect",
        help="store every attempt and event of every station in one database, exactly once",
        description="Subscribes in a persistent session (what comes while it is down is delivered when it is "
        "back); each message is committed, keyed by station and id, before it is acknowledged. Runs until "
        "Ctrl-C or SIGTERM. Export with `station fleet records --db FILE`.",
    )
    _broker_options(p, "the collector")
    p.add_argument("--db", required=True, metavar="FILE", help="the fleet database (made if missing)")
    p.add_argument(
        "--client-id",
        default="mpo-fleet-collector",
        metavar="ID",
        help="the session's name at the broker (default mpo-fleet-collector); keep it: a new one starts empty",
    )
    p.set_defaults(func=cmd_fleet_collect)
    p = fleet.add_parser(
        "records",
        help="export the collected attempts or events as CSV or JSON (station records over the floor)",
        description="The columns of `station records` with station_id first, by station, each station's oldest "
        "first. Without --format: a summary per station.",
    )
    p.add_argument("--db", required=True, metavar="FILE", help="the fleet database `station fleet collect` fills")
    p.add_argument("--format", choices=("csv", "json"), help="export format (default: only the summary)")
    p.add_argument("--output", "-o", metavar="FILE", help="write the export here (default: standard output)")
    p.add_argument("--station", metavar="ID", help="only this station")
    p.add_argument("--since", metavar="TIME", help="only attempts started (events made) at or after this ISO time")
    p.add_argument("--until", metavar="TIME", help="only attempts started (events made) before this ISO time")
    _record_filter_options(p)
    p.add_argument("--events", action="store_true", help="export the events (the stations' audits) instead")
    p.set_defaults(func=cmd_fleet_records)

    p = sub.add_parser(
        "config",
        help="show the effective configuration, all or one section, or check a file",
        description="station config show [SECTION] [--config FILE]  |  station config check FILE",
    )
    p.add_argument("action", choices=("show", "check"))
    p.add_argument("name", nargs="?", metavar="SECTION|FILE", help="show: one section (e.g. swipe); check: the file")
    p.add_argument("--config", metavar="FILE", help="show: the configuration file (default: the reference bench)")
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.verbose < 2:  # the library logs every callback of every transition: ours say what matters
        logging.getLogger("transitions").setLevel(logging.WARNING)
    command: Callable[[argparse.Namespace], int] = args.func  # set by each subparser: one of the cmd_* above
    try:
        return command(args)
    except ConfigError as exc:
        print(f"station: configuration error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"station: storage error: {exc}", file=sys.stderr)
        return 2
    except StateDirInUse as exc:  # one station per state directory (station/statelock.py)
        print(f"station {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `station records --format csv | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
