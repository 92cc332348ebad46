"""Production password hashing: Argon2id with OWASP's parameters; older hashes still log in and
are upgraded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.contrib.auth.hashers import check_password, identify_hasher, make_password
from django.test import override_settings

from settings import base

PASSWORD = "Quartz-Lantern-4417"


@pytest.fixture(autouse=True)
def _production_hashers() -> Iterator[None]:
    # The suite runs with MD5 for speed (settings/test.py); these tests use the real list.
    with override_settings(PASSWORD_HASHERS=base.PASSWORD_HASHERS):
        yield


def test_new_hashes_are_argon2id_with_owasp_parameters() -> None:
    encoded = make_password(PASSWORD)
    assert encoded.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
    assert check_password(PASSWORD, encoded)
    assert not check_password(PASSWORD + "x", encoded)
    assert type(identify_hasher(encoded)).__name__ == "Argon2idHasher"


def test_a_pbkdf2_hash_still_verifies_and_is_upgraded() -> None:
    old = make_password(PASSWORD, hasher="pbkdf2_sha256")
    upgraded: list[str] = []
    assert check_password(PASSWORD, old, setter=lambda raw: upgraded.append(make_password(raw)))
    assert len(upgraded) == 1
    assert upgraded[0].startswith("argon2$argon2id$")
    assert settings.PASSWORD_HASHERS[0] == "accounts.hashers.Argon2idHasher"
