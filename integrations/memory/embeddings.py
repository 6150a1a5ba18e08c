"""Text embedders for memory: the bundled offline WordLlama model, or any litellm embedding model.

`SOPHIA_EMBEDDINGS` unset means WordLlama (256-d weights shipped inside its wheel, ~40k short texts/s
batched and ~40 µs per query measured here, no network). Set, it names a litellm embedding model
(`openai/text-embedding-3-small`, `voyage/voyage-3`, ...) whose dimension is probed once.
`Mem0Embedder` is the adapter mem0 calls, registered in its embedder factory as `sophia`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Literal, Protocol

from bot.settings import Settings

log = logging.getLogger("sophia.memory")

# Cosine score below which a memory is not worth showing the model. Measured for WordLlama on
# tests/data/memory_pairs.jsonl against 40 off-topic messages (bench/memory.py prints the sweep):
# 0.28 is the highest threshold that keeps recall@5 >= 0.9 (0.909; 0.94 with no threshold) and it
# silences chit-chat ("thanks!", "lol", "ping"); 35% of off-topic messages still recall something,
# mostly on a shared word ("summarize this thread" -> the memory about thread summaries). mem0's
# default 0.1 lets every off-topic message through. Hosted models separate related from
# unrelated text more widely; 0.3 is a conservative default for them, not measured here.
WORDLLAMA_THRESHOLD = 0.28
HOSTED_THRESHOLD = 0.3


class Embedder(Protocol):
    """Turns texts into vectors; `name` identifies the model so a store never mixes two."""

    name: str
    threshold: float

    @property
    def dims(self) -> int:
        """Vector dimension."""
        ...

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One unit-length vector per text."""
        ...

    def assume_dims(self, dims: int) -> None:
        """Take the dimension a store recorded, so opening it needs no probe call."""
        ...


class WordLlamaEmbedder:
    """WordLlama's bundled `l2_supercat` 256-d model, loaded from the wheel without network."""

    name = "wordllama:l2_supercat:256"
    threshold = WORDLLAMA_THRESHOLD
    dims = 256

    def __init__(self) -> None:
        self._model = _load_wordllama()

    def assume_dims(self, dims: int) -> None:
        """Nothing to learn: the dimension is fixed."""

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Embed `texts` (normalised, so cosine is a dot product)."""
        if not texts:
            return []
        return self._model.embed(texts, norm=True, batch_size=256).tolist()


_wordllama: Any = None
_wordllama_lock = threading.Lock()


def _load_wordllama() -> Any:
    """The WordLlama model, loaded once per process (0.4 s)."""
    global _wordllama
    with _wordllama_lock:
        if _wordllama is None:
            root = logging.getLogger()
            handlers, level = list(root.handlers), root.level
            # wordllama.inference calls logging.basicConfig(level=INFO) at import time, which
            # would hijack the application's root logger; undo it.
            import wordllama
            from wordllama import WordLlama

            root.handlers[:], root.level = handlers, level
            # Its default loader looks for `tokenizer/` (the wheel ships `tokenizers/`) and then
            # downloads from Hugging Face; the package directory as cache_dir finds both files.
            package = Path(wordllama.__file__).parent
            _wordllama = WordLlama.load(cache_dir=package, disable_download=True)
        return _wordllama


class LiteLLMEmbedder:
    """A hosted embedding model through litellm; the dimension follows the model."""

    threshold = HOSTED_THRESHOLD

    def __init__(
        self, model: str, *, api_base: str | None = None, api_key: str | None = None
    ) -> None:
        self.model = model
        self.name = f"litellm:{model}"
        self._kwargs = {k: v for k, v in (("api_base", api_base), ("api_key", api_key)) if v}
        self._dims: int | None = None

    @property
    def dims(self) -> int:
        """The model's dimension, probed with one call the first time it is needed."""
        if self._dims is None:
            self._dims = len(self.embed(["dimension probe"])[0])
        return self._dims

    def assume_dims(self, dims: int) -> None:
        """Take the dimension a store recorded for this model."""
        self._dims = dims

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Embed `texts` in batches of 256 (providers cap the input list)."""
        import litellm

        out: list[list[float]] = []
        for start in range(0, len(texts), 256):
            batch = texts[start : start + 256]
            response = litellm.embedding(model=self.model, input=batch, **self._kwargs)
            rows = sorted(response.data, key=lambda row: row["index"])
            out.extend([float(x) for x in row["embedding"]] for row in rows)
        if out and self._dims is None:
            self._dims = len(out[0])
        return out


def load_embedder(settings: Settings) -> Embedder:
    """The embedder `SOPHIA_EMBEDDINGS` selects (WordLlama when unset)."""
    model = settings.embeddings
    if not model or model.lower() in ("wordllama", "bundled"):
        return WordLlamaEmbedder()
    api_base = api_key = None
    if settings.llm_api_base and model.startswith("openai/"):
        # An OpenAI-compatible server (SOPHIA_LLM_API_BASE) serves embeddings too.
        api_base = settings.llm_api_base
        api_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "not-needed"
    return LiteLLMEmbedder(model, api_base=api_base, api_key=api_key)


# --- the mem0 side -----------------------------------------------------------------------------

_LIVE: dict[str, Embedder] = {}  # embedder name -> instance, for mem0's factory to find


def register_with_mem0(embedder: Embedder) -> dict[str, Any]:
    """Make `embedder` constructible by mem0's factory; returns the embedder config for mem0."""
    from mem0.utils.factory import EmbedderFactory

    _LIVE[embedder.name] = embedder
    EmbedderFactory.provider_to_class["sophia"] = f"{__name__}.Mem0Embedder"
    return {"model": embedder.name, "embedding_dims": None}


def _make_mem0_embedder() -> type:
    """Build the mem0 adapter class (mem0 is imported only once the service has set its env)."""
    from mem0.embeddings.base import EmbeddingBase

    class Mem0Embedder(EmbeddingBase):
        """mem0's `EmbeddingBase` over a registered `Embedder` (looked up by model name)."""

        def __init__(self, config: Any = None) -> None:
            super().__init__(config)
            self.embedder = _LIVE[self.config.model]

        def embed(
            self, text: str, memory_action: Literal["add", "search", "update"] | None = None
        ) -> list[float]:
            return self.embedder.embed([text])[0]

        def embed_batch(self, texts: list[str], memory_action: str = "add") -> list[list[float]]:
            return self.embedder.embed(list(texts))

    return Mem0Embedder


def __getattr__(name: str) -> Any:
    # mem0's factory resolves "integrations.memory.embeddings.Mem0Embedder" with getattr.
    if name == "Mem0Embedder":
        cls = globals()["Mem0Embedder"] = _make_mem0_embedder()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
