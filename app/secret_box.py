"""Encryption of the secrets the set-up wizard keeps in the database, with one key: SECRET_KEY.

AES-256-GCM with a key derived from SECRET_KEY by HKDF, and the connection and setting name as
associated data: a ciphertext copied into another row (the webhook secret into the API token) does
not decrypt. A weak or missing SECRET_KEY is refused before anything is written, naming the fix.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.settings import ConfigurationError
from app.tokens import weakness

VERSION = "v1"
_NONCE_BYTES = 12
HOW_TO_MAKE_ONE = (
    "set SECRET_KEY to 32 or more random characters, e.g. `openssl rand -hex 32` "
    "(the Heroku button and `fly launch` generate one)"
)


class SecretKeyError(ConfigurationError):
    """SECRET_KEY is missing, weak, or not the key the stored secrets were written with."""

    def __init__(self, why: str) -> None:
        super().__init__({"SECRET_KEY": why})


def secret_key_problem(key: str) -> str | None:
    """Why this SECRET_KEY cannot protect stored secrets, or None when it can (app/tokens.py judges)."""
    key = key.strip()
    if not key:
        return f"missing — {HOW_TO_MAKE_ONE}"
    reason = weakness(key)
    return f"{reason} — {HOW_TO_MAKE_ONE}" if reason else None


class SecretBox:
    """Seals and opens setting values; `aad` binds a ciphertext to its connection and setting."""

    def __init__(self, secret_key: str) -> None:
        problem = secret_key_problem(secret_key)
        if problem:
            raise SecretKeyError(problem)
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"woobird settings store", info=b"aes-256-gcm v1"
        ).derive(secret_key.strip().encode())
        self._aead = AESGCM(derived)

    def seal(self, value: str, *, aad: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), aad.encode())
        return f"{VERSION}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, token: str, *, aad: str) -> str:
        version, _, payload = token.partition(":")
        if version != VERSION:
            raise SecretKeyError(f"a stored secret has an unknown format ({version!r})")
        try:
            raw = base64.urlsafe_b64decode(payload.encode())
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise SecretKeyError(
                "does not open the secrets stored by the set-up wizard: it changed since they were "
                "written. Put the previous SECRET_KEY back, or run the set-up wizard again"
            ) from exc
