"""Signing keys and the HMAC-SHA256 signature of a frame.

Signing keys come from Django's ``SECRET_KEY`` through :func:`derive_signing_key`; old keys from
``SECRET_KEY_FALLBACKS`` still verify (:func:`signing_keys_from_settings`). A frame's signature covers its
header and its body (see :mod:`django_tasks_q.messages.codec`), and is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import Any

from ..exceptions import ConfigurationError

__all__ = [
    "SIGNATURE_SIZE",
    "SIGNING_SALT",
    "check_key",
    "derive_signing_key",
    "derive_signing_keys",
    "sign",
    "signing_keys_from_settings",
    "verify",
]

#: The fixed salt of :func:`derive_signing_key`; changing it invalidates every signed message in flight.
SIGNING_SALT = b"django_tasks_q.message"
#: The size of a signature in bytes (HMAC-SHA256).
SIGNATURE_SIZE = hashlib.sha256().digest_size


def derive_signing_key(secret_key: str | bytes) -> bytes:
    """Return the 32-byte message signing key for a Django ``SECRET_KEY``.

    The key is ``HMAC-SHA256(key=secret_key (UTF-8), msg=SIGNING_SALT)`` with the fixed salt
    ``b"django_tasks_q.message"``: deterministic across processes and machines, and unrelated to the keys
    Django derives from the same secret for sessions, cookies or passwords.
    """
    if isinstance(secret_key, str):
        secret = secret_key.encode("utf-8")
    elif isinstance(secret_key, bytes | bytearray):
        secret = bytes(secret_key)
    else:
        raise ConfigurationError(f"SECRET_KEY must be a str, got {type(secret_key).__name__}")
    if not secret:
        raise ConfigurationError("SECRET_KEY is empty; messages cannot be signed with an empty key")
    return hmac.new(secret, SIGNING_SALT, hashlib.sha256).digest()


def derive_signing_keys(
    secret_key: str | bytes, fallbacks: Sequence[str | bytes] = ()
) -> tuple[bytes, list[bytes]]:
    """Return ``(signing_key, fallback_keys)`` derived from a secret and its older fallbacks.

    Empty fallbacks are skipped, as are fallbacks equal to the current secret.
    """
    if isinstance(fallbacks, str | bytes):
        raise ConfigurationError("SECRET_KEY_FALLBACKS must be a list of secrets, not a single string")
    key = derive_signing_key(secret_key)
    olds: list[bytes] = []
    for old in fallbacks:
        if not old:
            continue
        derived = derive_signing_key(old)
        if derived != key and derived not in olds:
            olds.append(derived)
    return key, olds


def signing_keys_from_settings() -> tuple[bytes, list[bytes]]:
    """Return ``(signing_key, fallback_keys)`` from ``settings.SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``.

    Reads the settings when called (never at import), so ``override_settings`` works.
    """
    from django.conf import settings

    try:
        secret = settings.SECRET_KEY
    except Exception as exc:  # ImproperlyConfigured for an empty or missing SECRET_KEY
        raise ConfigurationError(f"cannot sign messages: {exc}") from exc
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", None) or ()
    return derive_signing_keys(secret, fallbacks)


def check_key(key: Any, what: str) -> bytes:
    """Return ``key`` as bytes; raise ConfigurationError (naming ``what``) unless it is non-empty bytes."""
    if isinstance(key, str):
        raise ConfigurationError(f"{what} must be bytes, not str; use derive_signing_key(SECRET_KEY)")
    if not isinstance(key, bytes | bytearray):
        raise ConfigurationError(f"{what} must be bytes, got {type(key).__name__}")
    if not key:
        raise ConfigurationError(f"{what} must not be empty")
    return bytes(key)


def sign(key: bytes, header: bytes, body: bytes) -> bytes:
    """Return the HMAC-SHA256 of ``header`` followed by ``body`` under ``key``."""
    mac = hmac.new(key, header, hashlib.sha256)
    mac.update(body)
    return mac.digest()


def verify(keys: Iterable[bytes], header: bytes, body: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is the signature of ``header`` + ``body`` under one of ``keys``.

    Each comparison takes constant time (:func:`hmac.compare_digest`).
    """
    return any(hmac.compare_digest(sign(key, header, body), signature) for key in keys)
