"""Google Cloud credentials and BigQuery clients, in one place (the export, the
`query_database` tool and the secrets check all use these).

Credentials, first that applies:
1. the keyring's `bigquery_credentials`: a service-account JSON key (`livhana-cockpit secrets
   set bigquery_credentials --from-file key.json`);
2. with an `api_endpoint` (an emulator, a test server): anonymous;
3. Application Default Credentials (`gcloud auth application-default login`, a VM's
   metadata server, GOOGLE_APPLICATION_CREDENTIALS).

`google.cloud.bigquery` is imported inside the functions: it is heavy (about a second),
and nothing that paints the cockpit may wait for it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import ConfigError

CREDENTIALS_SECRET = "bigquery_credentials"
_REQUEST = re.compile(r"^(?:GET|POST|PUT|PATCH|DELETE) \S+: ")
_SA_FIELDS = ("client_email", "private_key", "token_uri")


def parse_service_account(text: str) -> dict[str, Any]:
    """The service-account key as a dict, or ConfigError naming what is wrong (one line)."""
    try:
        info = json.loads(text)
    except ValueError:
        raise ConfigError(
            f"{CREDENTIALS_SECRET} is not JSON: store a service-account key file "
            f"(`secrets set {CREDENTIALS_SECRET} --from-file KEY.json`)"
        ) from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ConfigError(
            f'{CREDENTIALS_SECRET} is not a service-account key (its "type" must be '
            '"service_account"); user credentials belong to Application Default Credentials'
        )
    missing = [f for f in _SA_FIELDS if not info.get(f)]
    if missing:
        raise ConfigError(f"{CREDENTIALS_SECRET} lacks {', '.join(missing)}")
    return info


def stored_service_account() -> dict[str, Any] | None:
    """The keyring's service-account key, None when none is stored. A keyring that cannot
    be read counts as none (ADC may still work); a stored value that is not a key is an
    error: the operator meant it to be used."""
    from .secrets import SecretStoreError, get_secret

    try:
        text = get_secret(CREDENTIALS_SECRET)
    except SecretStoreError:
        return None
    return parse_service_account(text) if text else None


def describe_credentials(api_endpoint: str = "") -> str:
    info = stored_service_account()
    if info is not None:
        return f"service account {info['client_email']} (keyring)"
    return "anonymous (api_endpoint)" if api_endpoint else "Application Default Credentials"


def bigquery_client(
    project: str, api_endpoint: str = "", service_account: dict[str, Any] | None = None
) -> Any:
    """A `bigquery.Client` for `project` with the credentials above. Blocking (the import,
    and ADC may probe a metadata server): call it in a thread."""
    from google.cloud import bigquery

    info = service_account if service_account is not None else stored_service_account()
    options = {"api_endpoint": api_endpoint} if api_endpoint else None
    if info is not None:
        from google.oauth2 import service_account as sa

        scopes = ["https://www.googleapis.com/auth/bigquery"]
        creds = sa.Credentials.from_service_account_info(info, scopes=scopes)
        return bigquery.Client(
            project=project or info.get("project_id") or None,
            credentials=creds,
            client_options=options,
        )
    if api_endpoint:
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(
            project=project or "local", credentials=AnonymousCredentials(), client_options=options
        )
    return bigquery.Client(project=project or None)


def error_text(exc: BaseException) -> str:
    """One line for a Google API error or a network failure: the API's own message, with
    its status and reason when it has them (`503 backendError: ...`)."""
    name, raw = type(exc).__name__, str(exc)
    if name == "ConnectionError" or "Max retries exceeded" in raw:  # requests / urllib3
        errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", raw)
        host = re.search(r"host='([^']+)', port=(\d+)", raw)
        where = f" at {host.group(1)}:{host.group(2)}" if host else ""
        return f"cannot reach BigQuery{where}: {errno.group(1) if errno else 'connection failed'}"
    if "Timeout" in name:
        return f"BigQuery did not answer in time ({name})"
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or raw or name
    # The client puts the request before the API's words: "GET https://...: Not found".
    message = _REQUEST.sub("", str(message), count=1)
    reasons = [e.get("reason") for e in getattr(exc, "errors", None) or [] if isinstance(e, dict)]
    head = " ".join(str(p) for p in (code, reasons[0] if reasons else None) if p)
    text = " ".join(f"{head}: {message}".split()) if head else " ".join(str(message).split())
    if not head:  # a connection failure: requests' text is long and nested
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= 300 else text[:297] + "..."
