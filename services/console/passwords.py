"""Console passwords, stored only as salted scrypt hashes: `scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>`.

scrypt is slow and memory-hard on purpose, so a leaked settings file does not give the passwords away
to a GPU in an afternoon; the cost parameters travel with each hash, so they can be raised later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

LOG2_N, R, P = 15, 8, 1  # 32 MiB and ~50 ms per check on a server core: OWASP's scrypt baseline
_MAXMEM = 64 * 1024 * 1024
_PREFIX = "scrypt"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def hash_password(password: str, *, log2_n: int = LOG2_N) -> str:
    if not password:
        raise ValueError("an empty password cannot be hashed")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**log2_n, r=R, p=P, maxmem=_MAXMEM, dklen=32)
    return f"{_PREFIX}${log2_n}${R}${P}${_b64(salt)}${_b64(digest)}"


def is_password_hash(value: str) -> bool:
    try:
        _parse(value)
    except ValueError:
        return False
    return True


def _parse(value: str) -> tuple[int, int, int, bytes, bytes]:
    parts = value.split("$")
    if len(parts) != 6 or parts[0] != _PREFIX:
        raise ValueError("not a scrypt$... password hash (use `hotline console hash-password`)")
    try:
        log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise ValueError("a damaged scrypt password hash") from None
    if not (10 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16 and len(salt) >= 16 and len(digest) >= 16):
        raise ValueError("scrypt parameters out of range")
    return log2_n, r, p, salt, digest


def verify_password(password: str, stored: str) -> bool:
    log2_n, r, p, salt, digest = _parse(stored)
    candidate = hashlib.scrypt(
        password.encode("utf-8", "surrogateescape"),
        salt=salt,
        n=2**log2_n,
        r=r,
        p=p,
        maxmem=_MAXMEM,
        dklen=len(digest),
    )
    return hmac.compare_digest(candidate, digest)


# Checked against an unknown user name, so a miss takes as long as a wrong password and does not tell
# which user names exist.
DECOY = hash_password(secrets.token_urlsafe(16))
