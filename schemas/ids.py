"""Content-hash identities. Equal content gives equal ids, so re-ingesting is idempotent."""

from __future__ import annotations

import hashlib
import unicodedata

import orjson

_SEP = b"\x1f"


def normalise_text(text: str) -> str:
    """NFC, unified newlines, no surrounding whitespace: the form that is hashed and stored."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.strip()


def normalise_messages(messages: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": normalise_text(m["content"])} for m in messages]


def digest(*parts: bytes) -> str:
    return hashlib.blake2b(_SEP.join(parts), digest_size=16).hexdigest()


def conversation_bytes(messages: list[dict]) -> bytes:
    return orjson.dumps([[m["role"], m["content"]] for m in messages])


def conversation_id(messages: list[dict]) -> str:
    """Id of a normalised conversation (a prompt or a completion)."""
    return digest(conversation_bytes(messages))


def text_id(text: str) -> str:
    return digest(text.encode("utf-8", "surrogatepass"))
