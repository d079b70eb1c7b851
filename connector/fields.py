"""Encrypted model fields: django-cryptography's, with its MAC keyed by ENCRYPTION_KEY too.

Upstream encrypts with a key derived from ``CRYPTOGRAPHY_KEY`` (our ``ENCRYPTION_KEY``) but signs the token with
``SECRET_KEY``, so rotating Django's ``SECRET_KEY`` would make every stored credential unreadable. Here both the
encryption and the MAC keys come from ``ENCRYPTION_KEY``: the two keys really are independent
(docs/decisions/0005-credentials-encryption.md).

Historical models in migrations rebuild these fields with upstream's defaults; no migration reads or writes
credentials, and one that does must use this module.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.db import models
from django.utils.encoding import force_bytes
from django_cryptography.core.signing import FernetSigner
from django_cryptography.fields import encrypt
from django_cryptography.utils.crypto import FernetBytes


def mac_key() -> bytes:
    """A MAC key derived from the (PBKDF2-derived) encryption key, distinct from it."""
    return hmac.new(force_bytes(settings.CRYPTOGRAPHY_KEY), b"connector:field-mac", hashlib.sha256).digest()


def encrypted(base_field: models.Field) -> models.Field:
    field = encrypt(base_field)
    field._fernet = FernetBytes(  # type: ignore[attr-defined]  # the library's own attribute, set by encrypt()
        signer=FernetSigner(key=mac_key())
    )
    return field
