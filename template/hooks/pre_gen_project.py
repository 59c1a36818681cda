"""Check the template values before anything is generated.

The values reach this script as data: cookiecutter renders the whole context with ``tojson`` twice, which
makes a JSON document inside a Python string literal, and ``json.loads`` reads it back. No value is ever
pasted into code, so quotes, braces or backslashes in a value cannot change what this script does.

A bad value stops generation (exit code 1): each message names the field, the rule and a good value, and
cookiecutter removes the half-made project directory.

These rules have one home, here: ``modelfunc new`` imports this file as it is in the template (unrendered: the
one Jinja expression is only evaluated when it runs as cookiecutter's hook) and calls ``validate(values)`` to
check each answer as it is typed. So the only Jinja in this file is that expression: no other double braces.
Two rules are modelfunc's own (the trigger list, the app-name rule): taken from modelfunc when it is installed
(``modelfunc new``, or cookiecutter in its environment), else the copies below, for cookiecutter alone.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata

try:  # modelfunc installed: its own rules
    from modelfunc.config import APP_NAME_RE as APP_NAME
    from modelfunc.config import APP_NAME_RULE
    from modelfunc.triggers import TRIGGER_TYPES

    TRIGGERS = tuple(sorted(TRIGGER_TYPES))  # cookiecutter.json's order: blob, http, service-bus-queue
except ImportError:  # cookiecutter alone: the same rules, copied (modelfunc's config.py and triggers.py)
    TRIGGERS = ("blob", "http", "service-bus-queue")
    APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,58}[A-Za-z0-9]")
    APP_NAME_RULE = "2-60 letters, digits and hyphens, not starting or ending with a hyphen"
AUTH_LEVELS = ("function", "anonymous", "admin")
# The shipped model was pickled by scikit-learn 1.9.1 (pinned in environment.yml), which needs Python >= 3.11.
PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
CACHES = ("none", "redis")

SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
LOCATION = re.compile(r"[a-z][a-z0-9]{1,39}")
STORAGE = re.compile(r"[a-z0-9]{3,24}")
REGISTRY = re.compile(r"[A-Za-z0-9]{5,50}")
CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
# A Service Bus queue name, as modelfunc.yaml takes it (modelfunc's config.py: ServiceBusQueueTrigger).
QUEUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/]{0,259}")
PATH_CHARS = re.compile(r"[A-Za-z0-9._\-/{}]+")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
ACTION_REF = re.compile(
    r"(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/(?P<repo>[A-Za-z0-9_.-]+)(?:/[A-Za-z0-9_.-]+)*"
    r"@(?P<ref>[A-Za-z0-9_][A-Za-z0-9._/-]*)"
)


def _choice(values: dict, field: str, allowed: tuple[str, ...], example: str | None = None,
            why: str = "") -> list[str]:
    value = values.get(field)
    if value in allowed:
        return []
    return [f"{field}: {value!r} is not one of {', '.join(allowed)}{why}; e.g. {example or allowed[0]!r}"]


def _project_name(values: dict) -> list[str]:
    name = values.get("project_name")
    example = "e.g. 'Diabetes Scorer'"
    if not isinstance(name, str) or not name.strip():
        return [f"project_name: is empty; give the project a name, {example}"]
    if any(unicodedata.category(c).startswith("C") for c in name):
        return [f"project_name: {name!r} contains a control character (newline, tab, ...); use one line of "
                f"text, {example}"]
    if "{" in name or "}" in name:
        return [f"project_name: {name!r} contains a brace, which reads as template and GitHub Actions "
                f"expression syntax; leave braces out, {example}"]
    if len(name) > 80:
        return [f"project_name: {name[:40]!r}... is {len(name)} characters; use at most 80, {example}"]
    slug = values.get("__project_slug")
    if not isinstance(slug, str) or not SLUG.fullmatch(slug) or len(slug) > 40:
        return [f"project_name: {name!r} has no letters or digits to name the project folder after "
                f"(it became {slug!r}); {example}"]
    return []


def _azure_names(values: dict) -> list[str]:
    errors = []
    app = values.get("app_name")
    if not isinstance(app, str) or not APP_NAME.fullmatch(app):
        errors.append(f"app_name: {app!r} is not a valid Function App name: {APP_NAME_RULE}; e.g. 'diabetes-scorer'")
    group = values.get("resource_group")
    if (not isinstance(group, str) or not 1 <= len(group) <= 90 or group.endswith(".")
            or not all(c.isalnum() or c in "_-.()" for c in group)):
        errors.append(f"resource_group: {group!r} is not a valid resource group name: 1-90 letters, digits, "
                      "underscores, hyphens, periods and parentheses, not ending with a period; "
                      "e.g. 'rg-diabetes-scorer'")
    location = values.get("location")
    if not isinstance(location, str) or not LOCATION.fullmatch(location):
        errors.append(f"location: {location!r} is not an Azure region name: lowercase letters and digits as "
                      "`az account list-locations -o table` shows them; e.g. 'westeurope'")
    storage = values.get("storage_prefix")
    if not isinstance(storage, str) or not STORAGE.fullmatch(storage):
        errors.append(f"storage_prefix: {storage!r} is not valid for a storage account name: 3-24 lowercase "
                      "letters and digits, nothing else; e.g. 'diabetesscorer'")
    registry = values.get("registry")
    if not isinstance(registry, str) or not REGISTRY.fullmatch(registry):
        errors.append(f"registry: {registry!r} is not a valid container registry name: 5-50 letters and digits; "
                      "e.g. 'diabetesscoreracr'")
    return errors


def _blob_paths(values: dict) -> list[str]:
    errors = []
    paths = {}
    for field, example in (("blob_input_path", "input/{blobname}.json"),
                           ("blob_output_path", "output/{blobname}_out.json")):
        value = values.get(field)
        good = f"e.g. {example!r}"
        if not isinstance(value, str) or not PATH_CHARS.fullmatch(value):
            errors.append(f"{field}: {value!r} may hold only letters, digits, '.', '_', '-', '/' and "
                          "placeholders such as {blobname}; " + good)
            continue
        container, sep, blob = value.partition("/")
        if not sep or not blob:
            errors.append(f"{field}: {value!r} has no container: write container/blob-name, {good}")
            continue
        if not CONTAINER.fullmatch(container):
            errors.append(f"{field}: {container!r} is not a valid container name: 3-63 lowercase letters, digits "
                          f"and single hyphens, starting and ending with a letter or digit; {good}")
            continue
        if "{" in PLACEHOLDER.sub("", blob) or "}" in PLACEHOLDER.sub("", blob):
            errors.append(f"{field}: {value!r} has a brace that is not part of a placeholder such as "
                          "{blobname}; " + good)
            continue
        paths[field] = (container, set(PLACEHOLDER.findall(blob)), value)
    source, target = paths.get("blob_input_path"), paths.get("blob_output_path")
    if source is not None and "blobname" not in source[1]:
        errors.append(f"blob_input_path: {source[2]!r} must contain "
                      "{blobname}, e.g. 'input/{blobname}.json'")
    elif source is not None and target is not None:
        unknown = sorted(target[1] - source[1])
        if unknown:
            errors.append(f"blob_output_path: {target[2]!r} uses the placeholder " + "{" + unknown[0] + "}"
                          + ", which blob_input_path does not define; e.g. 'output/{blobname}_out.json'")
        elif target[0] == source[0]:
            errors.append(f"blob_output_path: {target[2]!r} is in the input container {source[0]!r}, so every "
                          "output would trigger the function again; use another container, "
                          "e.g. 'output/{blobname}_out.json'")
    return errors


def _queues(values: dict) -> list[str]:
    errors = []
    names = {}
    for field, example in (("service_bus_input_queue", "scoring-requests"),
                           ("service_bus_output_queue", "scoring-results")):
        value = values.get(field)
        if not isinstance(value, str) or not QUEUE.fullmatch(value) or value.endswith(("/", ".")):
            errors.append(f"{field}: {value!r} is not a valid Service Bus queue name: 1-260 letters, digits, '.', "
                          "'-', '_' and '/', starting with a letter or digit, not ending with '/' or '.'; "
                          f"e.g. {example!r}")
        else:
            names[field] = value
    source, target = names.get("service_bus_input_queue"), names.get("service_bus_output_queue")
    if source is not None and target is not None and source.lower() == target.lower():
        errors.append(f"service_bus_output_queue: {target!r} is also the input queue, so every answer would be "
                      "scored again; use another queue, e.g. 'scoring-results'")
    return errors


def _action_ref(values: dict) -> list[str]:
    ref = values.get("action_ref")
    example = "e.g. 'modelfunc/modelfunc@v1' or a full commit SHA after the @"
    if not isinstance(ref, str) or "@" not in ref:
        return [f"action_ref: {ref!r} names no version: write owner/repo@version, {example}"]
    match = ACTION_REF.fullmatch(ref)
    if not match or match["repo"] in (".", "..") or ".." in match["ref"] or match["ref"].endswith(("/", ".")):
        return [f"action_ref: {ref!r} is not a GitHub Action reference: owner/repo[/path]@version with letters, "
                f"digits, '-', '_', '.' and '/', {example}"]
    return []


def validate(values: dict) -> list[str]:
    """Every bad value, one message each: the field's name, ': ', the value, the rule and a good example."""
    return [
        *_project_name(values),
        *_choice(values, "trigger", TRIGGERS),
        *_blob_paths(values),
        *_choice(values, "http_auth_level", AUTH_LEVELS),
        *_queues(values),
        *_choice(values, "python_version", PYTHON_VERSIONS, why=" (the shipped model needs scikit-learn 1.9.1, "
                 "which needs Python 3.11 or newer)"),
        *_choice(values, "cache", CACHES),
        *_azure_names(values),
        *_action_ref(values),
    ]


def main(values: dict) -> int:
    errors = validate(values)
    if errors:
        print("error: these template values are not valid, so nothing was generated:", file=sys.stderr)
        for error in errors:
            print(f"  {error}", file=sys.stderr)
        print("Run cookiecutter again with good values (on its command line: field=value).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads({{ cookiecutter | tojson | tojson }})))  # noqa: F821 - Jinja, rendered before this runs
