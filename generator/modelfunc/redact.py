"""The one secret redactor: everything modelfunc prints or writes about a storage account goes through it.

A secret reaches text in more shapes than the one it was given in. A SAS token handed over as
``sv=…&ss=b&…&sig=K3y%2B…%3D`` comes back from the storage SDK re-ordered (``…&se=…&sig=…&sv=…``) with its
signature URL-encoded, inside a URL that a log may encode again, inside JSON that may escape ``/`` as ``\\/`` or
``+`` as ``\\u002B``. So the redactor works two ways:

* **by key**: the value after a credential's key — ``sig`` (a SAS signature) and ``code`` (a function key) in a
  URL query, ``AccountKey``, ``SharedAccessKey``, ``SharedAccessSignature``, ``AccessKey`` and ``password`` in a
  connection string, the password of a ``scheme://user:password@host`` URL — in each of those forms (the ``=``
  and ``&`` raw, URL-encoded once or twice, or JSON-escaped); this needs no secret to be known;
* **by value**: every secret part of each connection string, SAS token or URL :func:`register`\\ ed (the storage
  module registers each connection string it opens), in every form :func:`forms` lists — so a signature printed
  on its own, without its key, is caught too.

:func:`secret_parts` and :func:`forms` are also what ``action.io.mask_connection_string`` registers with the runner,
so the log masks cover every form this redactor knows.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, quote_plus, unquote

MASK = "***"
MIN_SECRET = 6  # shorter values are left to the key patterns: masking them everywhere would garble ordinary text
# The one list of what makes a secret, used by the redactor and by every plan that prints settings (azure/plan.py):
CONNECTION_KEYS = ("accountkey", "sharedaccesskey", "sharedaccesssignature", "accesskey", "password", "pwd")
QUERY_KEYS = ("sig", "code")
# Words in a setting's name that make its value a secret whatever it holds (an app setting, an input).
SECRET_NAME_PARTS = ("key", "secret", "password", "token", "connection", "connstr", "sas", "credential", "pwd")

_EQ = r"(?:=|%3[dD]|%253[dD]|\\u003[dD])"
_AMP = r"(?:&|%26|%2526|\\u0026)"
_SEMI = r"(?:;|%3[bB]|%253[bB])"
# A key starts after a character that is not a letter (or after an encoded ';', '?' or '&'): sig anywhere (a SAS
# token may begin with it), code only in a query (after ? or &).
_START = r"(?:(?<![A-Za-z_])|(?<=%3[bBfF])|(?<=%253[bBfF]))"
_VALUE = r"[^\s\"'<>`|,;&]"
_SIG = re.compile(rf"(?i){_START}(sig{_EQ})((?:(?!{_AMP}|{_SEMI}|\\\"|\\u0022){_VALUE})+)")
_CODE = re.compile(rf"(?i)((?:\?|%3[fF]|{_AMP})code{_EQ})((?:(?!{_AMP}|{_SEMI}|\\\"|\\u0022){_VALUE})+)")
_CONN = re.compile(rf"(?i){_START}((?:accountkey|sharedaccesskey|accesskey|password){_EQ})"
                   rf"((?:(?!{_SEMI}|\\\"|\\u0022)[^\s\"'<>`|,;])+)")
_CONN_SAS = re.compile(rf"(?i){_START}(sharedaccesssignature{_EQ})"
                       rf"((?:(?!{_SEMI}|\\\"|\\u0022)[^\s\"'<>`|;])+)")
_URL_PASSWORD = re.compile(r"(?i)([a-z][a-z0-9+.-]*:(?://|%2F%2F)[^/:@\s\"']*(?::|%3A))([^@/\s\"']+)((?:@|%40))")
_REDIS_PASSWORD = re.compile(r"(?i)(?:^|[,;])\s*password=([^,;]+)")
_JSON_SPECIAL = set("+&<>'\"`\\")  # what JavaScript/.NET encoders write as \uXXXX besides non-ASCII


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def forms(secret: str) -> list[str]:
    """Every form ``secret`` may be printed in: as it is; URL-encoded (upper- and lower-case hex, ``/`` kept or
    not, form-encoded, twice); JSON-escaped (Python's, with ``\\/``, with ``\\uXXXX`` for the characters
    JavaScript and .NET encoders escape, or for every character that is not a letter or digit). Longest first."""
    if not secret:
        return []
    out = {secret}
    for encoded in (quote(secret, safe=""), quote(secret, safe="/"), quote_plus(secret),
                    quote(quote(secret, safe=""), safe="")):
        out.update((encoded, _lower_hex(encoded)))
    plain = json.dumps(secret)[1:-1]
    out.update((plain, plain.replace("/", "\\/"), json.dumps(secret, ensure_ascii=False)[1:-1]))
    for hexcase in (str.lower, str.upper):
        special = "".join(f"\\u{hexcase(format(ord(c), '04x'))}" if c in _JSON_SPECIAL or not c.isascii() else c
                          for c in plain)
        out.update((special, special.replace("/", "\\/")))
        out.add("".join(c if c.isascii() and c.isalnum() else f"\\u{hexcase(format(ord(c), '04x'))}"
                        for c in secret))
    return sorted((f for f in out if f), key=len, reverse=True)


def secret_parts(value: str | None) -> list[str]:
    """The secrets inside ``value``: the key/password parts of a connection string, a SAS token's signature (as
    given and decoded), a function key in a URL's ``code=``, a URL's password; the whole value too when it holds
    any (a connection string is a secret as a whole). Empty for a value with none."""
    if not value or not value.strip():
        return []
    text = value.strip()
    parts: list[str] = []
    for item in text.split(";"):
        key, sep, val = item.partition("=")
        if sep and key.strip().lower() in CONNECTION_KEYS and val.strip():
            parts.append(val.strip())
            if key.strip().lower() == "sharedaccesssignature":
                parts += _query_secrets(val.strip())
    parts += _query_secrets(text)
    parts += [m.group(1).strip() for m in _REDIS_PASSWORD.finditer(text)]
    for m in _URL_PASSWORD.finditer(text):
        parts += [m.group(2), unquote(m.group(2))]
    parts = [p for p in dict.fromkeys(parts) if len(p) >= MIN_SECRET]
    return [text, *parts] if parts and text not in parts else parts


def _query_secrets(text: str) -> list[str]:
    """``sig`` and ``code`` values of a query string, SAS token or URL: as written and decoded."""
    query = text.split("?", 1)[1] if "?" in text else text
    found = []
    for raw in re.split(r"[&;]", query):
        key, sep, val = raw.partition("=")
        if sep and key.strip().lower() in QUERY_KEYS and val:
            found += [val, unquote(val)]
    found += [v for k, v in parse_qsl(query, keep_blank_values=False) if k.strip().lower() in QUERY_KEYS]
    return found


class Redactor:
    """Replaces every known secret (by key and by value) with ``***``; thread-safe, idempotent."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._forms: list[str] = []
        for value in secrets:
            self.register(value)

    def register(self, value: str | None) -> list[str]:
        """Remember the secret parts of ``value`` (a connection string, SAS token, URL or bare secret); returns
        them."""
        parts = secret_parts(value) or ([value.strip()] if value and len(value.strip()) >= MIN_SECRET else [])
        new = {f for p in parts for f in forms(p) if len(f) >= MIN_SECRET}
        with self._lock:
            self._forms = sorted(set(self._forms) | new, key=len, reverse=True)
        return parts

    def __call__(self, text: str | None) -> str:
        if not text:
            return text or ""
        with self._lock:
            known = list(self._forms)
        for form in known:
            if form in text:
                text = text.replace(form, MASK)
        text = _CONN_SAS.sub(lambda m: m.group(1) + MASK, text)
        text = _CONN.sub(lambda m: m.group(1) + MASK, text)
        text = _SIG.sub(lambda m: m.group(1) + MASK, text)
        text = _CODE.sub(lambda m: m.group(1) + MASK, text)
        return _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), text)


_REDACTOR = Redactor()


def register(value: str | None) -> list[str]:
    """Register ``value``'s secrets with the process-wide redactor (see :class:`Redactor`)."""
    return _REDACTOR.register(value)


def redact(text: str | None) -> str:
    """``text`` with every secret the process-wide redactor knows, by key or by value, replaced by ``***``."""
    return _REDACTOR(text)


def redact_data(value: object) -> object:
    """A JSON-like structure with every string redacted (keys kept)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    return value
