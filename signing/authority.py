"""A certificate authority whose key may live anywhere: issues certificates, publishes its CRL."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import crl, keys, x509

from .errors import PkiError
from .keys import KeySource
from .x509build import CertProfile, RevokedEntry, build_certificate, build_crl

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start (never world-readable, even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def replace_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Atomic replace; a unique temporary name keeps concurrent writers (processes) apart."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class CertificateAuthority:
    """Issues certificates and keeps a fresh CRL (regenerated when close to expiry)."""

    def __init__(
        self,
        source: KeySource,
        *,
        crl_url: str,
        crl_path: Path | None = None,
        crl_validity: timedelta = timedelta(days=7),
        crl_refresh_before: timedelta = timedelta(days=1),
        clock: Clock = utcnow,
    ) -> None:
        self._source = source
        self.crl_url = crl_url
        self._crl_path = crl_path
        self._crl_validity = crl_validity
        self._crl_refresh_before = crl_refresh_before
        self._clock = clock
        self._lock = threading.Lock()
        self._crl: crl.CertificateList | None = None
        self._stale = False  # set by revoke(): re-sign even if the current CRL is fresh
        self._revoked_path = crl_path.with_name(crl_path.stem + ".revoked.json") if crl_path else None
        self._revoked: dict[int, datetime] = self._load_revoked()
        with source.open() as key:
            self.certificate: x509.Certificate = key.certificate
            self.chain: tuple[x509.Certificate, ...] = key.chain
        if crl_path is not None and crl_path.exists():
            try:
                self._crl = crl.CertificateList.load(crl_path.read_bytes())
                self._crl.native  # noqa: B018 - parse eagerly so corruption shows here
            except ValueError:
                self._crl = None

    def issue(
        self,
        *,
        subject: x509.Name,
        public_key: keys.PublicKeyInfo,
        not_before: datetime,
        not_after: datetime,
        profile: CertProfile,
    ) -> x509.Certificate:
        ca_not_after = self.certificate["tbs_certificate"]["validity"]["not_after"].native
        if not_after > ca_not_after:
            raise PkiError("requested validity exceeds the issuing CA's own validity")
        with self._source.open() as key:
            return build_certificate(
                subject=subject,
                subject_key=public_key,
                issuer=key,
                not_before=not_before,
                not_after=not_after,
                profile=profile,
            )

    def _load_revoked(self) -> dict[int, datetime]:
        if self._revoked_path is None or not self._revoked_path.exists():
            return {}
        try:
            raw = json.loads(self._revoked_path.read_text())
            return {int(serial): datetime.fromisoformat(at) for serial, at in raw.items()}
        except (OSError, ValueError) as e:
            raise PkiError(f"unreadable revocation list {self._revoked_path}") from e

    def revoke(self, serial: int, when: datetime | None = None) -> None:
        """Revoke a certificate this CA issued; the CRL is re-signed at once.

        Other processes holding this CA pick the change up at their next CRL refresh.
        """
        with self._lock:
            self._revoked[serial] = (when or self._clock()).replace(microsecond=0)
            if self._revoked_path is not None:
                replace_file(
                    self._revoked_path,
                    json.dumps({str(k): v.isoformat() for k, v in self._revoked.items()}).encode(),
                )
            self._stale = True
        self.crl()

    def is_revoked(self, serial: int) -> bool:
        return serial in self._revoked

    def crl(self) -> crl.CertificateList:
        """The current CRL, re-signed first if it expires within ``crl_refresh_before``."""
        with self._lock:
            now = self._clock()
            current = self._crl
            if current is not None and not self._stale:
                next_update = current["tbs_cert_list"]["next_update"].native
                this_update = current["tbs_cert_list"]["this_update"].native
                if this_update <= now and next_update - now > self._crl_refresh_before:
                    return current
            previous = 0
            if current is not None:
                for ext in current["tbs_cert_list"]["crl_extensions"]:
                    if ext["extn_id"].native == "crl_number":
                        previous = int(ext["extn_value"].native)
            number = max(previous + 1, int(now.timestamp()))
            # Backdate slightly so a validator whose clock lags ours still accepts it.
            this_update = now.replace(microsecond=0) - timedelta(minutes=5)
            with self._source.open() as key:
                fresh = build_crl(
                    issuer=key,
                    number=number,
                    this_update=this_update,
                    next_update=this_update + self._crl_validity,
                    revoked=[RevokedEntry(serial, at) for serial, at in sorted(self._revoked.items())],
                )
            if self._crl_path is not None:
                replace_file(self._crl_path, fresh.dump())
            self._crl = fresh
            self._stale = False
            return fresh

    def crl_der(self) -> bytes:
        return bytes(self.crl().dump())
