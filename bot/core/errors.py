"""Sophia's exceptions. Each carries a message safe to show a user.

SophiaError
 ├── ConfigError            a setting is missing or malformed (names the variable)
 ├── ResearchError          every search provider failed or none is configured (lists them)
 ├── FetchError             a web page could not be fetched (plain reason)
 └── ModelError             a model call failed
      ├── ModelUnavailable  down, overloaded, timed out, or refused after fallbacks
      ├── ModelAuthError    the provider rejected the key (names the variable)
      └── ContextTooLong    the conversation does not fit the model's window
"""

from __future__ import annotations


class SophiaError(Exception):
    """Base class; `str(error)` is written for the person in Slack, never a trace."""


class ConfigError(SophiaError):
    """A setting is missing or malformed."""

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class ResearchError(SophiaError):
    """No search provider answered; the message lists what was tried and how it failed."""


class FetchError(SophiaError):
    """A page could not be read (refused, too large, not text, private address, …)."""


class ModelError(SophiaError):
    """A model call failed."""


class ModelUnavailable(ModelError):
    """The model server is down, overloaded or too slow."""


class StreamInterrupted(ModelUnavailable):
    """The stream broke after some of the answer was delivered."""


class ModelAuthError(ModelError):
    """The provider rejected the credentials; retrying will not help."""


class ContextTooLong(ModelError):
    """The prompt is longer than the model's context window."""
