"""The signing service the server holds: PKI material, TSA and pipeline behind one object.

Production points config at real keys (PKCS#12 or PKCS#11) and a real TSA; whatever is not
configured comes from the development PKI in ``<data_dir>/pki``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from asn1crypto import keys, pem, x509
from pyhanko.sign.timestamps import TimeStamper

from .authority import CertificateAuthority, utcnow
from .devpki import DevPki, crl_url
from .errors import PkiError, TimestampError
from .keys import KeySource, KeySourceConfig, key_source_from_config, load_certs
from .pdfsign import ContractSigningRequest, SignedPdf, SigningMaterial, seal_pdf, sign_contract
from .revocation import CrlSource, HttpCrlSource, combine_sources
from .tsa import GuardedTimeStamper, HttpTsaConfig, LocalTimeStamper, LocalTsa, http_timestamper
from .validate import ValidationReport, validate_pdf
from .x509build import CertProfile

BANK_ISSUING_CRL = "bank-issuing"


@dataclass(frozen=True)
class SigningConfig:
    """``crl_base_url``: where this server serves CRLs, e.g. https://host:8443/api/v1/pki/crl.

    The dev PKI publishes ``root.crl`` and ``issuing.crl`` there; a configured (production)
    issuing CA publishes ``bank-issuing.crl``, a distinct name so both can coexist when only
    some material is configured (e.g. HSM keys with the in-process dev TSA).
    """

    crl_base_url: str
    organization: str = "rtc-server development"
    seal: KeySourceConfig | None = None
    issuing_ca: KeySourceConfig | None = None
    tsa: HttpTsaConfig | None = None
    trust_roots: tuple[Path, ...] = ()
    """Extra trust anchors: the production root, the external TSA's root."""
    fetch_foreign_crls: bool = False
    """Fetch CRLs this server does not publish over HTTP (a production root's) while signing."""


def _self_signed(cert: x509.Certificate) -> bool:
    return bool(cert.subject == cert.issuer)


class SigningService:
    def __init__(self, data_dir: Path | str, config: SigningConfig) -> None:
        data_dir = Path(data_dir)
        self.config = config
        needs_dev = config.seal is None or config.issuing_ca is None or config.tsa is None
        self.dev_pki: DevPki | None = (
            DevPki.open(data_dir / "pki", config.crl_base_url, config.organization) if needs_dev else None
        )
        roots: list[x509.Certificate] = []
        if self.dev_pki is not None:
            roots.append(self.dev_pki.root_cert)
        for p in config.trust_roots:
            roots.extend(load_certs(p))

        if config.issuing_ca is not None:
            crl_dir = data_dir / "pki-crl"
            crl_dir.mkdir(parents=True, exist_ok=True)
            self.issuing_ca = CertificateAuthority(
                key_source_from_config(config.issuing_ca),
                crl_url=crl_url(config.crl_base_url, BANK_ISSUING_CRL),
                crl_path=crl_dir / "issuing.crl",
            )
            roots.extend(c for c in self.issuing_ca.chain if _self_signed(c))
        else:
            assert self.dev_pki is not None
            self.issuing_ca = self.dev_pki.issuing_ca
        seal: KeySource
        if config.seal is not None:
            seal = key_source_from_config(config.seal)
        else:
            assert self.dev_pki is not None
            seal = self.dev_pki.seal_source
        self.local_tsa: LocalTsa | None = None
        if config.tsa is None:
            assert self.dev_pki is not None
            self.local_tsa = LocalTsa(self.dev_pki.tsa_key)
        if not roots:
            raise PkiError("no trust anchors: configure trust_roots with the production root")
        self.trust_roots: tuple[x509.Certificate, ...] = tuple({r.sha256: r for r in roots}.values())

        sources: list[CrlSource] = [self._own_crl]
        if config.fetch_foreign_crls:
            sources.append(HttpCrlSource())
        self.material = SigningMaterial(
            issuing_ca=self.issuing_ca,
            seal=seal,
            timestamper=self._timestamper,
            trust_roots=self.trust_roots,
            crl_source=combine_sources(*sources),
            organization=config.organization,
        )

    def _timestamper(self) -> TimeStamper:
        if self.local_tsa is not None:
            return GuardedTimeStamper(LocalTimeStamper(self.local_tsa), "in-process TSA")
        assert self.config.tsa is not None
        return GuardedTimeStamper(http_timestamper(self.config.tsa), self.config.tsa.url)

    def timestamp_digest(self, digest: bytes, algorithm: str = "sha256") -> bytes:
        """An RFC 3161 token (DER) whose message imprint is `digest`. Blocking: it runs its own event
        loop, so call it from a worker thread (the recorder's writer thread does)."""
        token = asyncio.run(self._timestamper().async_timestamp(digest, algorithm))
        return bytes(token.dump())

    def certify_key(self, public_key_der: bytes, common_name: str, days: int = 3650) -> list[bytes]:
        """A certificate chain (leaf first, DER) from the issuing CA for a server key that signs
        evidence, such as recording manifests, so that it too chains to the published root."""
        now = utcnow().replace(microsecond=0)
        ca_end = self.issuing_ca.certificate["tbs_certificate"]["validity"]["not_after"].native
        leaf = self.issuing_ca.issue(
            subject=x509.Name.build(
                {"common_name": common_name, "organization_name": self.config.organization},
                use_printable=False,
            ),
            public_key=keys.PublicKeyInfo.load(public_key_der),
            not_before=now - timedelta(minutes=1),
            not_after=min(now + timedelta(days=days), ca_end),
            profile=CertProfile(
                key_usage=frozenset({"digital_signature"}), crl_urls=(self.issuing_ca.crl_url,)
            ),
        )
        chain = [self.issuing_ca.certificate, *self.issuing_ca.chain]
        return [leaf.dump(), *(c.dump() for c in chain if c.sha256 != leaf.sha256)]

    def _own_crl(self, url: str) -> bytes | None:
        if url == self.issuing_ca.crl_url:
            return self.issuing_ca.crl_der()
        if self.dev_pki is not None:
            return self.dev_pki.crl_for_url(url)
        return None

    # --- what the HTTP layer serves -------------------------------------------------------
    def ca_pem(self) -> bytes:
        """The trust anchors documents chain to, as a PEM bundle (``GET /api/v1/pki/ca.pem``)."""
        return b"".join(bytes(pem.armor("CERTIFICATE", c.dump())) for c in self.trust_roots)

    def crl_names(self) -> Sequence[str]:
        names = ["root", "issuing"] if self.dev_pki is not None else []
        if self.config.issuing_ca is not None:
            names.append(BANK_ISSUING_CRL)
        return tuple(names)

    def crl_der(self, name: str) -> bytes:
        """Current DER CRL (``GET /api/v1/pki/crl/{name}.crl``); KeyError for unknown names."""
        if name == BANK_ISSUING_CRL and self.config.issuing_ca is not None:
            return self.issuing_ca.crl_der()
        if name in ("root", "issuing") and self.dev_pki is not None:
            return self.dev_pki.crl_der(name)
        raise KeyError(name)

    def handle_tsa_request(self, der: bytes) -> bytes:
        """RFC 3161 over HTTP (``application/timestamp-query``) when the in-process TSA is used."""
        if self.local_tsa is None:
            raise TimestampError("this server does not run a TSA (an external one is configured)")
        return self.local_tsa.handle_tsa_request(der)

    # --- blocking work: call from a worker thread -------------------------------------------
    def sign_contract(self, pdf: bytes, request: ContractSigningRequest) -> SignedPdf:
        return sign_contract(pdf, request, self.material)

    def seal_pdf(self, pdf: bytes, reason: str = "Electronic seal of the bank") -> SignedPdf:
        return seal_pdf(pdf, self.material, reason=reason)

    def validate(self, pdf: bytes) -> ValidationReport:
        return validate_pdf(pdf, self.trust_roots)
