"""One base exception for everything modelfunc reports to a user.

Every error carries enough context for a person to fix it without reading code:
the file, the field (a dotted path), the line when known, and a hint. The CLI
prints ``str(error)`` and exits with ``error.exit_code``; the action wing
(``modelfunc.action.io.fail``) turns ``file``/``line`` into an annotation.

Every error modelfunc raises for a person to read is defined here (exit code in brackets: 2, the input is wrong;
1, something ran and failed)::

    ModelfuncError [2]
    ├── ConfigError [2]            modelfunc.yaml, samples/, inferenceconfig.json
    ├── EnvironmentSpecError [2]   environment.yml / requirements.txt
    │   └── NoWheel [2]            a requirement with no wheel for the image's platform
    ├── EntryScriptError [2]       score.py breaks the entry-script contract (found statically)
    ├── PackageError [2]           the app could not be rendered or written
    ├── OptionError [2]            a command-line option or action input
    ├── NewProjectError [2]        a value for ``modelfunc new``, or the template
    │   └── GenerationError [1]    cookiecutter failed after every value was accepted
    ├── HostError [1]              the local host or an emulator it needs
    │   └── NotFoundError [1]      what a request names does not exist (404)
    ├── StorageError [1]           a storage account could not be reached or used
    ├── ImageError [1]             the engine, the build, the self-test or the registry
    │   └── SelfTestFailed [1]     the built image did not score the sample as expected
    ├── SampleTestFailed [1]       the round trip's answer did not match (or never came)
    │   └── GoldenMismatch [1]     two places answered the sample differently
    ├── CredentialError [1]        no Azure credential works
    └── DeployError [1]            an Azure deployment step failed or timed out
        └── SlotUnhealthy [1]      the slot never became healthy; production untouched

Not here, on purpose: the runtime shim's own exceptions (``runtime/``: copied into every app, where modelfunc is not
installed; its ``EntryScriptError`` is the app's, raised at run time), and exceptions a module raises and catches
itself for control flow (``_NotYet``, ``RequestRefused``, ``NotAuthorizedYet``, ``YamlLimitError``).
"""

from __future__ import annotations

from pathlib import Path


class ModelfuncError(Exception):
    """Base of every error modelfunc raises on purpose. Never raised directly."""

    exit_code = 2

    def __init_subclass__(cls, *, exit_code: int | None = None, **kwargs: object) -> None:
        """``class HostError(ModelfuncError, exit_code=1)``: the code beside the name, as in the tree above."""
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code = exit_code

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


class HostError(ModelfuncError, exit_code=1):
    """The local host (``modelfunc serve``) or an emulator it needs failed to start or run."""


class StorageError(ModelfuncError, exit_code=1):
    """A storage account (Azurite or Azure) could not be reached or used."""


class SampleTestFailed(ModelfuncError, exit_code=1):
    """The round-trip test ran and the output did not match (or never came)."""


class OptionError(ModelfuncError):
    """A command-line option or action input is invalid (``field`` names it, e.g. ``--storage-prefix``)."""


class CredentialError(ModelfuncError, exit_code=1):
    """No Azure credential works (none set up, or Azure refused it): the hint says which one to set up."""


class DeployError(ModelfuncError, exit_code=1):
    """An Azure deployment step failed or timed out (provisioning, the slot never became healthy, the swap)."""


class GoldenMismatch(SampleTestFailed):
    """The sample was answered differently in two places (run() directly, the local host, the image, the slot)."""


class ImageError(ModelfuncError, exit_code=1):
    """The Docker engine, the build, the self-test or the registry failed."""


class SelfTestFailed(ImageError):
    """The built image could not load the app or did not score the sample as expected."""


class NoWheel(EnvironmentSpecError):
    """A requirement has no wheel for the image's platform (only an sdist): nothing can be locked for it."""


class NewProjectError(ModelfuncError):
    """A value for the new project is not valid (``field`` names the option), or the template cannot be used."""


class GenerationError(NewProjectError, exit_code=1):
    """cookiecutter failed after every value was accepted; what it had written was removed."""


class SlotUnhealthy(DeployError):
    """The slot did not become Healthy in time (or failed); production was not touched. ``deployment``: the
    ``azure.results.SlotDeployment`` as far as it got (what the action's summary shows)."""

    def __init__(self, message: str, deployment: object, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.deployment = deployment


class NotFoundError(HostError):
    """What a request names (a blob to invoke a function on, say) does not exist: the admin API answers 404."""
