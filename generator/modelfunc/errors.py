"""One base exception for everything modelfunc reports to a user.

Every error carries enough context for a person to fix it without reading code:
the file, the field (a dotted path), the line when known, and a hint. The CLI
prints ``str(error)`` and exits with ``error.exit_code``; ``github.py`` (later)
turns ``file``/``line`` into an annotation.
"""

from __future__ import annotations

from pathlib import Path


class ModelfuncError(Exception):
    """Base of every error modelfunc raises on purpose. Never raised directly."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.field = field
        self.line = line
        self.hint = hint

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        if self.field:
            where = f"{where}: {self.field}" if where else self.field
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConfigError(ModelfuncError):
    """modelfunc.yaml, samples/ or another repo file is missing or invalid."""


class EnvironmentSpecError(ModelfuncError):
    """environment.yml / requirements.txt cannot be read or turned into pip requirements."""


class EntryScriptError(ModelfuncError):
    """score.py is missing or breaks the AML entry-script contract (found statically)."""


class PackageError(ModelfuncError):
    """The Functions app could not be rendered or written."""


class HostError(ModelfuncError):
    """The local host (``modelfunc serve``) or an emulator it needs failed to start or run."""

    exit_code = 1


class StorageError(ModelfuncError):
    """A storage account (Azurite or Azure) could not be reached or used."""

    exit_code = 1


class SampleTestFailed(ModelfuncError):
    """The round-trip test ran and the output did not match (or never came)."""

    exit_code = 1


class OptionError(ModelfuncError):
    """A command-line option or action input is invalid (``field`` names it, e.g. ``--storage-prefix``)."""


class CredentialError(ModelfuncError):
    """No Azure credential works (none set up, or Azure refused it): the hint says which one to set up."""

    exit_code = 1


class DeployError(ModelfuncError):
    """An Azure deployment step failed or timed out (provisioning, the slot never became healthy, the swap)."""

    exit_code = 1


class GoldenMismatch(SampleTestFailed):
    """The sample was answered differently in two places (run() directly, the local host, the image, the slot)."""


class NotFoundError(HostError):
    """What a request names (a blob to invoke a function on, say) does not exist: the admin API answers 404."""
