"""Standard Webhooks v1 signatures (symmetric scheme ``v1``, HMAC-SHA256).

The signed string is ``{webhook-id}.{webhook-timestamp}.{raw body}`` and the HMAC key is the
base64-decoded part of the secret after the ``whsec_`` prefix (not the ASCII text). Pure:
stdlib only. Errors never repeat the secret.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
#: The Standard Webhooks spec asks for at least 24 random bytes (192 bits).
MIN_SECRET_BYTES = 24


def decode_secret(secret: str) -> bytes:
    """The HMAC key inside ``whsec_<base64>`` (or bare ``<base64>``).

    Raises ValueError, without quoting the secret, when the text is not valid standard
    base64 or decodes to nothing.
    """
    text = secret.strip()
    if text.startswith(SECRET_PREFIX):
        text = text[len(SECRET_PREFIX):]
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook signing secret is not valid base64 "
                         f"(expected {SECRET_PREFIX}<base64>)") from None
    if not key:
        raise ValueError("webhook signing secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value ``v1,<base64 HMAC-SHA256>`` for exactly these bytes.

    Raises ValueError when the secret is not valid base64 (see :func:`decode_secret`) or
    when ``msg_id`` contains ``.``, which the spec forbids because ``.`` separates the
    signed fields.
    """
    if "." in msg_id:
        raise ValueError("webhook-id must not contain '.'")
    key = decode_secret(secret)
    signed = f"{msg_id}.{int(timestamp)}.".encode("utf-8") + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")
