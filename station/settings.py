"""Configuration changed on the console: saved in the station database over the file's values.

Invariant: a saved change can never stop the station from starting. Both the running
configuration and the one the next start will build are validated before anything is saved;
values safe to change while running apply at once (only while ready), the others from the next
start. `config reset` drops saved changes and the file's value (or the default) counts again.
Runs on the controller loop; every change is audited with where it came from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .config import OVERRIDES_SETTING, Config, ConfigError, needs_restart, with_overrides
from .domain import ServiceResult
from .store import Store


class Settings:
    """The console's saved configuration changes. `apply` receives a new running configuration."""

    def __init__(
        self,
        store: Store,
        file_config: Config,
        running: Callable[[], Config],
        apply: Callable[[Config], None],
        *,
        wall: Callable[[], float],
    ) -> None:
        self._store = store
        self.file_config = file_config  # the configuration file's values, under the saved changes
        self._running = running
        self._apply = apply
        self._wall = wall

    def saved_changes(self) -> dict[str, dict[str, Any]]:
        """The console's saved changes, {section: {key: value}}."""
        saved: dict[str, dict[str, Any]] = json.loads(self._store.setting(OVERRIDES_SETTING) or "{}")
        return saved

    def saved_problem(self) -> str | None:
        """Why the saved changes cannot be applied to the file's configuration, if so."""
        try:
            with_overrides(self.file_config, self.saved_changes())
        except (ConfigError, ValueError) as exc:
            return f"saved console settings are not valid with this configuration file: {exc}"
        return None

    def change(self, section: str, key: str, value: Any, *, source: str, busy: str | None) -> ServiceResult:
        """Save one value. `busy`: the station's state when it is not ready (a value that would
        apply at once is then refused)."""
        later = needs_restart(section, key)
        if not later and busy is not None:
            return ServiceResult(False, error=f"the station is {busy}; change settings while it is ready")
        saved = self.saved_changes()
        saved.setdefault(section, {})[key] = value
        try:
            with_overrides(self.file_config, saved)
            new = self._running() if later else self._running().replace(section, **{key: value})
        except ConfigError as exc:
            return ServiceResult(False, error=f"{exc} (with the other saved changes; config reset one of them first)")
        self._save(saved, source, {f"{section}.{key}": value})
        if later:
            return ServiceResult(True, [f"{section}.{key} = {value!r} saved; takes effect at the next start"])
        self._apply(new)
        return ServiceResult(True, [f"{section}.{key} = {value!r} in effect now"])

    def reset(self, names: list[str], *, source: str, busy: str | None) -> ServiceResult:
        """Drop saved changes (`section.key` names): now for values safe to change while
        running (only while ready), from the next start for the others."""
        now = [n for n in names if not needs_restart(*n.split(".", 1))]
        if now and busy is not None:
            return ServiceResult(False, error=f"the station is {busy}; change settings while it is ready")
        saved = self.saved_changes()
        for name in names:
            section, _, key = name.partition(".")
            saved.get(section, {}).pop(key, None)
        saved = {section: values for section, values in saved.items() if values}
        live = self._running()
        try:
            with_overrides(self.file_config, saved)
            for name in now:
                section, _, key = name.partition(".")
                live = live.replace(section, **{key: file_value(self.file_config, name)})
        except ConfigError as exc:
            return ServiceResult(
                False,
                error=f"resetting {', '.join(names)} leaves a configuration that is not "
                f"valid: {exc}; reset the other saved change too",
            )
        self._save(saved, source, {"reset": names})
        self._apply(live)
        return ServiceResult(
            True,
            [
                f"{name} = {file_value(self.file_config, name)!r} (configuration file) "
                + ("in effect now" if name in now else "from the next start")
                for name in names
            ],
        )

    def _save(self, saved: dict[str, dict[str, Any]], source: str, audit: dict[str, Any]) -> None:
        text = json.dumps(saved, sort_keys=True)
        self._store.set_setting(OVERRIDES_SETTING, text, self._wall(), source=source, audit_detail=audit)


def file_value(config: Config, name: str) -> Any:
    """The value of `section.key` in `config`."""
    section, _, key = name.partition(".")
    return getattr(getattr(config, section), key)
