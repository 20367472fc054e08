"""The keys actually bound, after `config.ui.keymap` remaps, for any text that names a key
(nav bar, key bar, halt banner, buttons, hints): a remapped key is never shown by its
old name."""

from __future__ import annotations

from textual.binding import Binding
from textual.dom import DOMNode

from .textual_private import bindings_with_keymap, forget_escape_sequences

DIGITS = "1234567890"


def binding_for(node: DOMNode, binding_id: str) -> Binding | None:
    """The binding with this id on `node` (an app or a screen), with the keymap applied."""
    bindings = bindings_with_keymap(node)
    for key_bindings in bindings.key_to_bindings.values():
        for binding in key_bindings:
            if binding.id == binding_id:
                return binding
    return None


def key_for(node: DOMNode, binding_id: str, default: str = "?") -> str:
    """How to write the key bound to `binding_id` ("ctrl+x" shows as "^x"), markup-safe."""
    binding = binding_for(node, binding_id)
    if binding is None:
        return default
    return node.app.get_key_display(binding).replace("[", "\\[")


def escape_digits_are_alt() -> None:
    """Escape then a digit, typed quickly, must switch panels.

    The terminal sends it as one sequence, ESC + digit (the alt prefix). Textual's table
    reads those ten sequences as WezTerm-on-macOS Option characters (ESC 3 -> "£"), so the
    operator leaving a field with Escape and pressing 3 got "£" typed into the field.
    Without the entries the parser reports them as alt+digit, which the app binds to the
    panel switches (and no text is typed with alt+digit)."""
    forget_escape_sequences([f"\x1b{digit}" for digit in DIGITS])
