"""Secret redaction: every token shape, known values never survive, ordinary text untouched."""

from __future__ import annotations

import json

import pytest

from agent.redact import Redactor

KEYRING = {
    "ANTHROPIC_API_KEY": "plain-looking-value-42",
    "db-password": "Tr0ub4dor&3-horse",
    "webhook": "abc/def+ghi=jkl?",  # regex metacharacters must be taken literally
}
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE\n"
    "bm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----"
)


@pytest.fixture
def r() -> Redactor:
    return Redactor(KEYRING)


@pytest.mark.parametrize(
    "secret, label",
    [
        ("sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdefgh", "anthropic-key"),
        ("sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "openai-key"),
        ("sk-AbCdEfGhIjKlMnOpQrStUvWxYz01234567", "openai-key"),
        ("ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "github-token"),
        ("gho_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "github-token"),
        ("github_pat_11ABCDEFG0abcdefghijkl_MNOPQRSTUVWXYZabcdefghijklmnop", "github-token"),
        ("AKIAIOSFODNN7EXAMPLE", "aws-access-key"),
        ("xoxb-1234567890-0987654321-AbCdEfGhIjKl", "slack-token"),
        ("xoxp-1234567890-AbCdEfGhIjKl", "slack-token"),
        ("AIzaSyA-1234567890abcdefghijklmnopqrstu", "google-api-key"),
        (JWT, "jwt"),
        (PEM, "private-key"),
    ],
)
def test_token_patterns(r: Redactor, secret: str, label: str) -> None:
    for text in (secret, f"out: {secret} done", f'{{"v": "{secret}"}}', f"x={secret}\nnext"):
        out = r.redact(text)
        assert secret not in out and f"[REDACTED:{label}]" in out
    assert r.redact(f"before {secret} after") == f"before [REDACTED:{label}] after"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("psql password=hunter22 host=db", "psql password=[REDACTED:password] host=db"),
        ('{"api_key": "zz9-zz9-zz9"}', '{"api_key": "[REDACTED:api_key]"}'),
        ("SECRET: topsecretvalue", "SECRET: [REDACTED:secret]"),
        ("export ACCESS_TOKEN='abc.def.ghi'", "export ACCESS_TOKEN='[REDACTED:access_token]'"),
        ("curl -H 'Authorization: Bearer abcdef123456' https://x",
         "curl -H 'Authorization: Bearer [REDACTED:bearer-token]' https://x"),
        ("authorization=Basic dXNlcjpwYXNz", "authorization=Basic [REDACTED:bearer-token]"),
        # a prefix before the key word (`\b` does not fire after `_`)
        ("DB_PASSWORD=s3cr3tpw", "DB_PASSWORD=[REDACTED:password]"),
        ("export PGPASSWORD=hunter22", "export PGPASSWORD=[REDACTED:password]"),
        ("MY_TOKEN=abcdef123", "MY_TOKEN=[REDACTED:token]"),
        ('SECRET_KEY="django-insecure-xyz"', 'SECRET_KEY="[REDACTED:secret_key]"'),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
         "aws_secret_access_key = [REDACTED:access_key]"),
        ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "AWS_SECRET_ACCESS_KEY=[REDACTED:access_key]"),
        ("postgres://app:pa55word@db:5432/x", "postgres://app:[REDACTED:url-password]@db:5432/x"),
        ("redis://:pa55word@cache", "redis://:[REDACTED:url-password]@cache"),
        ("HTTP_AUTHORIZATION=Bearer abc123def456", "HTTP_AUTHORIZATION=Bearer [REDACTED:bearer-token]"),
        ("X-Auth: Bearer abcdefghijklmnop1234", "X-Auth: Bearer [REDACTED:bearer-token]"),
    ],
)  # fmt: skip
def test_key_value_shapes_keep_the_key(r: Redactor, text: str, expected: str) -> None:
    assert r.redact(text) == expected


def test_keyring_values_never_survive(r: Redactor) -> None:
    for name, value in KEYRING.items():
        for text in (value, f"echo {value}", f"{value}{value}", f"prefix{value}suffix"):
            out = r.redact(text)
            assert value not in out and f"[REDACTED:{name}]" in out
    event = {"type": "tool_result", "output": f"key is {KEYRING['ANTHROPIC_API_KEY']}",
             "nested": [{"cmd": ["echo", KEYRING["db-password"]]}, ("t", KEYRING["webhook"])]}  # fmt: skip
    dumped = json.dumps(r.redact_obj(event))
    assert not any(v in dumped for v in KEYRING.values())


def test_unnamed_values_get_a_stable_hash_label_and_short_values_are_ignored() -> None:
    r = Redactor(["value-one-123", "abc", "", "   "])
    out = r.redact("value-one-123 and abc")
    assert out.startswith("[REDACTED:") and out.endswith(" and abc")
    assert out == Redactor(["value-one-123"]).redact("value-one-123 and abc")


def test_add_learns_new_secrets_and_longest_wins() -> None:
    r = Redactor()
    assert r.redact("token-xyz-987 is here") == "token-xyz-987 is here"
    r.add("token-xyz-987", "NEW")
    assert r.redact("token-xyz-987 is here") == "[REDACTED:NEW] is here"
    r.add("token-xyz-987-long-form", "LONG")
    assert r.redact("token-xyz-987-long-form") == "[REDACTED:LONG]"


@pytest.mark.parametrize(
    "text",
    [
        "The quick brown fox; 3 passed, 1 failed in 0.2s",
        "max_tokens=16000 input_tokens: 1234",
        "password=None and token: null",
        "password = os.environ['DB_PASSWORD']",
        "task-sk-learn sk-short ghp_short AKIA123 xoxb- eyJ.notajwt",
        "def get_key(self, key): return self._keys[key]",
        "pwd=/work/main PWD=/home/op/project",
        "Asia/Tokyo AKIAX",
        "",
        "see https://example.com/path?page=2&sort=asc",
        "git clone ssh://git@github.com:22/org/repo https://user@host/x",
        "the bearer of bad news; max_token_count: 5",
    ],
)
def test_non_secrets_untouched(r: Redactor, text: str) -> None:
    assert r.redact(text) == text


def test_redact_obj_copies_and_hides_secret_keys(r: Redactor) -> None:
    event = {"task_id": "t1", "seq": 3, "ts": 1.5, "ok": True, "none": None,
             "headers": {"Authorization": "Bearer xyz", "X-Api-Key": "k", "Accept": "json"},
             "input": {"password": "pw", "max_tokens": 5, "token_count": "12"}}  # fmt: skip
    out = r.redact_obj(event)
    assert out["headers"] == {"Authorization": "[REDACTED:Authorization]",
                              "X-Api-Key": "[REDACTED:X-Api-Key]", "Accept": "json"}  # fmt: skip
    assert out["input"] == {"password": "[REDACTED:password]", "max_tokens": 5,
                            "token_count": "12"}  # fmt: skip
    assert out["seq"] == 3 and out["ok"] is True and out["none"] is None
    assert event["headers"]["Authorization"] == "Bearer xyz"  # the input is not mutated


def test_cache_does_not_hide_a_secret_added_later() -> None:
    r = Redactor()
    assert r.redact("short-secret") == "short-secret"  # cached as clean
    r.add("short-secret", "S")
    assert r.redact("short-secret") == "[REDACTED:S]"


# -- known secrets in their common encodings ---------------------------------------------------
ENC_SECRET = "Tr0ub4dor&3-horse/Q?"  # special characters: URL and JSON forms differ from it


def _b64_blobs(value: str) -> list[str]:
    import base64

    raw = value.encode()
    blobs = []
    for pad in range(6):  # every alignment, inside a longer blob
        data = b"P" * pad + raw + b"-tail-bytes"
        blobs += [base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode(),
                  base64.b64encode(data).decode().rstrip("=")]  # fmt: skip
    return blobs


def _rebuilt(text: str) -> bytes:
    """What a reader could decode back from every base64 run left in `text`."""
    import base64
    import contextlib
    import re as _re

    out = b""
    for run in _re.findall(r"[A-Za-z0-9+/_-]{8,}", text):
        for shift in range(4):
            chunk = run[shift:]
            chunk = chunk[: len(chunk) // 4 * 4]
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                with contextlib.suppress(ValueError):
                    out += decode(chunk) + b"|"
    return out


@pytest.mark.parametrize("value", [KEYRING["ANTHROPIC_API_KEY"], ENC_SECRET, "sécret-wörd-ünïcode"])
def test_base64_at_every_alignment_is_caught(value: str) -> None:
    r = Redactor({"vault": value})
    for blob in _b64_blobs(value):
        out = r.redact(f"data: {blob} end")
        assert "[REDACTED:vault (base64)]" in out, (blob, out)
        assert value.encode() not in _rebuilt(out)


def test_wrapped_base64_and_hex_dumps_are_caught() -> None:
    import base64
    import textwrap

    r = Redactor({"vault": ENC_SECRET})
    for pad in range(0, 120, 7):
        data = b"A" * pad + ENC_SECRET.encode() + b"B" * 90
        for width, text in ((76, base64.b64encode(data).decode()), (64, base64.b64encode(data).decode()),
                            (60, data.hex())):  # fmt: skip
            dump = "\n".join(textwrap.wrap(text, width))
            out = r.redact(f"$ base64 f\n{dump}\n$ echo done\ndone")
            assert "[REDACTED:vault" in out, (pad, width, out)
            assert out.endswith("\n$ echo done\ndone")  # lines around it untouched
            assert ENC_SECRET.encode() not in _rebuilt(out.replace("\n", ""))


def test_hex_url_and_escaped_forms_are_caught() -> None:
    import json
    import re
    import shlex
    from urllib.parse import quote, quote_plus

    r = Redactor({"vault": ENC_SECRET})
    raw = ENC_SECRET.encode()
    forms = {
        "hex": [raw.hex(), raw.hex().upper(), f"0x{raw.hex()}"],
        "url": [quote(ENC_SECRET, safe=""), quote(ENC_SECRET), quote_plus(ENC_SECRET),
                re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(ENC_SECRET, safe=""))],
        "": [json.dumps(ENC_SECRET), json.dumps(json.dumps(ENC_SECRET)),
             json.dumps({"k": json.dumps({"v": ENC_SECRET})}), shlex.quote(ENC_SECRET),
             ENC_SECRET.replace("&", "\\&").replace("?", "\\?")],
    }  # fmt: skip
    for encoding, texts in forms.items():
        for text in texts:
            out = r.redact(f"value={text}&next=1 and more")
            assert "[REDACTED:vault" in out and encoding in out, (text, out)
            assert "Tr0ub4dor" not in out and "tr0ub4dor" not in out.lower(), out


def test_encodings_leave_ordinary_output_alone() -> None:
    import base64
    import hashlib

    r = Redactor({"vault": ENC_SECRET, "api": KEYRING["ANTHROPIC_API_KEY"]})
    texts = [
        base64.b64encode(bytes(range(256)) * 3).decode(),
        hashlib.sha256(b"x").hexdigest() + " " + hashlib.sha1(b"y").hexdigest().upper(),
        "https://example.com/search?q=hello%20world&lang=en",
        '{"path": "C:\\\\Users\\\\op", "msg": "line\\nnext \\"quoted\\""}',
        "\n".join(["QUFBQUFBQUFBQUFBQUFBQUFBQUFB"] * 4),
    ]
    for text in texts:
        assert r.redact(text) == text


def test_a_secret_of_thousands_of_characters_is_known_and_redacted() -> None:
    """A service-account key (a 2-3 KB JSON) is one secret: learning it must not exhaust
    the recursion limit (the engine could not start), and it is hidden whole and encoded."""
    import base64
    import secrets as rand

    key = json.dumps({"type": "service_account", "private_key": rand.token_hex(1500)})
    r = Redactor({"bigquery_credentials": key})
    assert r.redact(f"key: {key}!") == "key: [REDACTED:bigquery_credentials]!"
    encoded = base64.b64encode(key.encode()).decode()
    assert key not in r.redact(encoded) and "REDACTED:bigquery_credentials" in r.redact(encoded)
