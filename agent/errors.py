"""The few exceptions that steer control flow. Each carries a one-line message for the operator."""

from __future__ import annotations


class CockpitError(Exception):
    """Base: anything the operator should see as one clear line, never a traceback."""

    exit_code = 1


class ConfigError(CockpitError):
    exit_code = 2


class UsageError(CockpitError):
    """Bad input from the operator (a malformed task, an unknown task id, ...)."""

    exit_code = 2


class StoreError(CockpitError):
    exit_code = 3


class StoreFull(StoreError):
    """The disk holding the store is full: nothing more can be recorded until space is freed."""


class MissingKeyError(CockpitError):
    exit_code = 4


class ModelError(CockpitError):
    """The model API is unreachable, kept failing after retries, or rejected the call."""

    exit_code = 5


class ContextTooLong(ModelError):
    """The API said the prompt is too long for the model's window (400): the loop
    condenses harder and asks again once before it gives up."""


class ToolError(Exception):
    """A tool refused or failed; the message goes back to the model as an error result."""


class TaskStopped(Exception):
    """Raised inside a task's loop to end it early (cancel, emergency stop, limit reached).

    `state` is the final state to record: cancelled, failed, ...
    """

    def __init__(self, state: str, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


class StopActive(CockpitError):
    """New work refused: the emergency stop is engaged until the operator re-arms."""

    exit_code = 6
