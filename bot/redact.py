"""Scrub secrets from any text before it reaches a log line, a model prompt or Slack."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Token shapes worth catching even when we were never told the value (pasted by a user,
# echoed back in an SDK error): Slack, OpenAI-style, GitHub, bearer headers, AWS keys.
_PATTERNS = [
    re.compile(r"xox[abposre]-[A-Za-z0-9-]{8,}"),
    re.compile(r"xapp-[A-Za-z0-9-]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{16,}"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
]
MASK = "[redacted]"


class Redactor:
    """Replaces known secret values and token-shaped strings with `[redacted]`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Learn more secret values (short ones are ignored: they would mask ordinary words)."""
        known = set(self._secrets) | {s for s in secrets if s and len(s) >= 8}
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(known, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            if pattern.groups:
                text = pattern.sub(lambda m: m.group(1) + MASK, text)
            else:
                text = pattern.sub(MASK, text)
        return text


redact = Redactor()
"""The process-wide redactor; `bot.app` teaches it the configured secrets at start-up."""
