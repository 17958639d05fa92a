"""The service's secrets: no public defaults, and a refusal to start weak in production.

``SECRET_KEY`` signs cursors, cluster ids and impression tokens. Unset, a random key is made
on the first start and kept in ``DATA_DIR/secret_key`` (mode 0600), so every worker on that
directory, and every restart, signs alike; instances on other disks must be given one.
With ``O2O_ENV=production`` a missing or short secret, a short admin key, or a missing
user-token key refuses to start, with the setting to fix in the message.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time

log = logging.getLogger("app")

#: The shortest secret accepted in production (bytes): an HMAC key as long as its output.
MIN_SECRET_BYTES = 32
SECRET_FILE = "secret_key"


class WeakSecret(RuntimeError):
    """A production start with a missing or weak secret."""


def resolve_secrets(cfg) -> None:
    """Fill ``cfg["SECRET_KEY"]`` and check every secret for ``cfg["ENV"]``; raises WeakSecret."""
    production = cfg["ENV"] == "production"
    problems = []
    if production:
        if not cfg["SECRET_KEY"]:
            problems.append("O2O_SECRET_KEY is not set: set it to a random string of at least 32 bytes")
        if not (cfg["USER_TOKEN_SECRET"] or cfg["USER_TOKEN_PUBLIC_KEY"]):
            problems.append(
                "O2O_USER_TOKEN_SECRET (HS256) or O2O_USER_TOKEN_PUBLIC_KEY (RS256/ES256) is not set: "
                "user tokens could not be checked"
            )
    for name in ("SECRET_KEY", "ADMIN_KEY", "USER_TOKEN_SECRET"):
        value = cfg[name]
        if value and len(value.encode()) < MIN_SECRET_BYTES:
            message = f"O2O_{name} is {len(value.encode())} bytes: use at least {MIN_SECRET_BYTES} random bytes"
            if production:
                problems.append(message)
            else:
                log.warning("%s (refused with O2O_ENV=production)", message)
    if problems:
        raise WeakSecret("refusing to start with O2O_ENV=production:\n  - " + "\n  - ".join(problems))
    if not cfg["SECRET_KEY"]:
        cfg["SECRET_KEY"] = stored_secret(cfg["DATA_DIR"])
    if not (cfg["USER_TOKEN_SECRET"] or cfg["USER_TOKEN_PUBLIC_KEY"]):
        cfg["USER_TOKEN_SECRET"] = derived_user_secret(cfg["SECRET_KEY"])


def derived_user_secret(secret_key: str) -> str:
    """The development user-token key when none is set: derived from the service secret,
    so ``scripts.users token`` and every worker agree without another setting."""
    return hmac.new(secret_key.encode(), b"o2o user tokens", hashlib.sha256).hexdigest()


def stored_secret(data_dir: str) -> str:
    """The key kept in ``data_dir``, made on first use. Creation is exclusive (O_EXCL), so
    workers starting at once agree on one key."""
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, SECRET_FILE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
        log.warning(
            "O2O_SECRET_KEY is not set: made a random one in %s; give every instance the same O2O_SECRET_KEY", path
        )
    for _ in range(50):  # another worker may have created the file and not written it yet
        with open(path) as fh:
            key = fh.read().strip()
        if key:
            return key
        time.sleep(0.02)
    raise WeakSecret(f"{path} is empty: delete it, or set O2O_SECRET_KEY")
