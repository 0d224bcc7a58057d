"""Credentials: where socmap takes them from (the environment only) and how it keeps them out of its outputs.

:func:`check_no_credentials` rejects a YAML that holds one; :func:`redact` and :func:`redact_tree` replace them by
``***`` in every message, log line, provenance record and STAC Item socmap writes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from socmap.errors import ConfigError

STAC_API_KEY_ENV = "SOCMAP_STAC_API_KEY"
"""Environment variable holding a STAC API key, sent as the header named by ``SOCMAP_STAC_API_KEY_HEADER``
(default ``X-API-Key``) on every STAC API request."""
SECRET_ENV = (STAC_API_KEY_ENV, "PC_SDK_SUBSCRIPTION_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
              "AWS_SESSION_TOKEN", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_ACCESS_KEY",
              "AZURE_STORAGE_CONNECTION_STRING", "GS_ACCESS_KEY_ID", "GS_SECRET_ACCESS_KEY", "GDAL_HTTP_AUTH",
              "GDAL_HTTP_BEARER", "GDAL_HTTP_USERPWD", "GDAL_HTTP_HEADERS")
"""Environment variables whose values are credentials: the only place socmap takes credentials from, and values
that are redacted wherever socmap writes a message, a log line, provenance or a STAC Item."""
_CRED_KEY = re.compile(r"(?i)(api[_-]?key|token|passw(or)?d|secret|credential|access[_-]?key|private[_-]?key|"
                       r"sas[_-]|bearer|authorization|signature)")
_CRED_VALUE = re.compile(r"(?i)(://[^/\s:@]+:[^/\s@]+@|[?&;](sig|signature|token|access_token|api[_-]?key|"
                         r"x-amz-signature|x-amz-credential|x-goog-signature|x-goog-credential|awsaccesskeyid|"
                         r"subscription-key|password)=)")


_SECRET_QUERY = re.compile(
    r"(?i)([?&;](?:sig|signature|se|sv|sp|st|skoid|sktid|skt|ske|sks|skv|sr|token|access_token|api[_-]?key|"
    r"apikey|key|x-amz-[a-z-]+|x-goog-[a-z-]+|awsaccesskeyid|password|secret|subscription-key)=)[^&#\s'\"]*")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@'\"]+:[^/\s@'\"]+@")
_BEARER = re.compile(r"(?i)\b(bearer|token|api[_-]?key|authorization)(\s*[:=]\s*|\s+)([A-Za-z0-9._~+/=-]{8,})")


def env_secrets() -> list[str]:
    """The values of the credential variables in :data:`SECRET_ENV` that are set (to redact them)."""
    return [v for k in SECRET_ENV if (v := os.environ.get(k, "").strip())]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with credentials replaced by ``***``: URL query signatures and tokens (SAS ``sig=``, ``X-Amz-*``,
    ``token=``...), ``user:password@`` in URLs, ``Bearer``/``api_key=`` values, and the literal values of
    ``secrets`` and of every set :data:`SECRET_ENV` variable (e.g. ``SOCMAP_STAC_API_KEY``) wherever they appear."""
    out = _SECRET_QUERY.sub(r"\1***", str(text))
    out = _USERINFO.sub(r"\1***@", out)
    out = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}***", out)
    for s in [*secrets, *env_secrets()]:
        if len(s) >= 4:
            out = out.replace(s, "***")
    return out


def redact_tree(obj: Any) -> Any:
    """A copy of a JSON-like tree with credential-looking keys' values (the keys :func:`check_no_credentials`
    rejects) replaced by ``***`` and credentials in strings redacted (:func:`redact`)."""
    if isinstance(obj, dict):
        return {k: ("***" if _CRED_KEY.search(str(k)) and v not in (None, "") else redact_tree(v))
                for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_tree(v) for v in obj]
    if isinstance(obj, str):
        return redact(obj)
    return obj


def check_no_credentials(path: Path | str, data: Any, where: str = "") -> None:
    """Reject credentials in a YAML (raw, before ``${VAR}`` expansion): credential-looking keys (``api_key``,
    ``token``, ``password``, ``secret``...), URLs carrying a user:password or a signature/token query, and
    ``${VAR}`` of a credential variable (:data:`SECRET_ENV`). One-line :class:`ConfigError` naming the key, never
    the value; credentials come from the environment only."""
    hint = (f"credentials come from the environment only ({STAC_API_KEY_ENV}, AWS_*, AZURE_STORAGE_*, "
            "GDAL_HTTP_*), never from a YAML file; remove it")
    if isinstance(data, dict):
        for k, v in data.items():
            key = f"{where}.{k}" if where else str(k)
            if _CRED_KEY.search(str(k)) and v not in (None, "", [], {}):
                raise ConfigError(f"{path}: {key} looks like a credential; {hint}")
            check_no_credentials(path, v, key)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            check_no_credentials(path, v, f"{where}[{i}]")
    elif isinstance(data, str):
        if _CRED_VALUE.search(data) or any(f"${{{name}}}" in data or f"${name}" in data for name in SECRET_ENV):
            raise ConfigError(f"{path}: {where or 'a value'} holds a credential (a signed URL, user:password or "
                              f"a credential variable); {hint}")

