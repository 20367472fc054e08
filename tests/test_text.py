"""agent/text.py: text that is not valid Unicode is named or written out, never lost."""

from __future__ import annotations

import json
import os

from agent.text import first_invalid, lone_surrogate, marked, marked_value


def test_marked_writes_out_undecodable_bytes_and_lone_surrogates() -> None:
    assert marked(os.fsdecode(b"caf\xe9")) == "caf\\xe9"
    assert marked("a\ud800b") == "a\\ud800b"
    assert marked("plain é ✓") == "plain é ✓"
    assert lone_surrogate("x\udfffy") == "\\udfff" and lone_surrogate("ok") is None
    json.dumps(marked("\ud800"), ensure_ascii=False).encode("utf-8")  # storable


def test_first_invalid_names_the_field_and_absurd_nesting() -> None:
    assert first_invalid({"path": "ok", "content": "a\ud800"}) == (
        "input.content is not valid Unicode (a lone surrogate); send UTF-8 text"
    )
    assert first_invalid({"steps": [{"title": "ok"}, {"title": "\udce9"}]}) == (
        "input.steps[1].title is not valid Unicode (a lone surrogate); send UTF-8 text"
    )
    deep: object = "x"
    for _ in range(5000):  # deeper than the recursion limit: named, not a RecursionError
        deep = [deep]
    assert (
        first_invalid({"a": deep}) == "input.a" + "[0]" * 64 + " is nested more than 64 levels deep"
    )
    cut = marked_value({"a": deep})
    json.dumps(cut)  # bounded, so it can be stored
    assert first_invalid({"a": [1, 2.5, None, True, {"b": "fine"}]}) is None
