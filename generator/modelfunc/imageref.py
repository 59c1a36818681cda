"""Image references in Docker's grammar: an image name (``--image``), a tag, a base image; the registry host."""

from __future__ import annotations

import re

from .errors import OptionError

# Docker's reference grammar (distribution/reference, regexp.go): a tag, and repository path components (lower
# case) after an optional registry host; a digest. Matched whole (fullmatch: `$` would let a trailing newline in).
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:]+\])"  # a host name, or an IPv6 address in brackets
REPOSITORY_RE = re.compile(rf"(?:{_DOMAIN}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*")
DIGEST_REFERENCE_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}")
MAX_REFERENCE = 255  # Docker's NameTotalLengthMax, for the repository name


def check_reference(repository: str | None, tag: str | None) -> None:
    """Refuse an image name Docker would refuse, before anything is rendered or built."""
    if repository is not None and (len(repository) > MAX_REFERENCE or not REPOSITORY_RE.fullmatch(repository)):
        raise OptionError(f"{repository!r} is not an image repository", field="--image",
                          hint="[REGISTRY[:PORT]/]PATH with lower-case letters, digits and . _ - between them, "
                               "e.g. myreg.azurecr.io/diabetes-scorer")
    if tag is not None and not TAG_RE.fullmatch(tag):
        raise OptionError(f"{tag!r} is not an image tag", field="--tag",
                          hint="up to 128 letters, digits, _ . - (not starting with . or -), e.g. v1 or a commit id")


def check_base_image(reference: str) -> None:
    """Refuse a base image that is not one image reference in Docker's grammar: REPOSITORY[:TAG][@DIGEST].

    It is written into the Dockerfile's FROM line as it is, so anything else (a newline above all) could add
    instructions of its own to the build."""
    name, _, digest = reference.partition("@")
    repository, tag = name, None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:  # a tag (a colon before the last slash is the registry's port)
        repository, tag = name[: len(name) - len(last)] + last.split(":", 1)[0], last.split(":", 1)[1]
    ok = (bool(reference) and len(repository) <= MAX_REFERENCE and REPOSITORY_RE.fullmatch(repository) is not None
          and (tag is None or TAG_RE.fullmatch(tag) is not None)
          and ("@" not in reference or DIGEST_REFERENCE_RE.fullmatch(digest) is not None))
    if not ok:
        raise OptionError(f"{reference!r} is not an image reference", field="--base-image",
                          hint="[REGISTRY[:PORT]/]REPOSITORY[:TAG][@sha256:DIGEST] with a lower-case repository, "
                               "e.g. mcr.microsoft.com/azure-functions/python:4-python3.11")


def split_repository(repository: str) -> tuple[str | None, str]:
    """('127.0.0.1:5000', 'team/model') for '127.0.0.1:5000/team/model'; (None, repo) for Docker Hub names."""
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, repository
