"""Long-term memory for Sophia: mem0 over Qdrant (an embedded Edge shard by default), with scopes.

Importing this package is cheap: mem0, Qdrant and the embedding model load in `MemoryService.open`.

    memory = await MemoryService.open(settings, models=LiteLLMModels(settings))
    await memory.remember("Code freeze starts Dec 15", scope=None, where=where)
    items = await memory.recall("when is the freeze?", where=where)
    await memory.close()
"""

from bot.core.memory import MemoryItem, Scope, Where
from integrations.memory.scopes import placement, visible_spaces
from integrations.memory.service import MemoryService
from integrations.memory.tools import memory_tools

__all__ = [
    "MemoryItem",
    "MemoryService",
    "Scope",
    "Where",
    "memory_tools",
    "placement",
    "visible_spaces",
]
