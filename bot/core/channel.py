"""Per-channel settings an admin chooses with `/sophia config`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChannelSettings:
    """How Sophia behaves in one channel; the defaults are how she behaves everywhere else."""

    off: bool = False  # Sophia does not answer here at all
    mention_only: bool = False  # thread follow-ups need an @mention too
    default_route: str | None = None  # the model route unless someone picks one
    prompt_addition: str = ""  # extra instructions from the channel's admins
    disabled_groups: frozenset[str] = field(default_factory=frozenset)  # tool groups not offered

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["disabled_groups"] = sorted(self.disabled_groups)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ChannelSettings:
        if not data:
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["disabled_groups"] = frozenset(known.get("disabled_groups") or ())
        return cls(**known)
