"""Where revocation data comes from while signing: our own CRLs straight from the PKI object.

The server publishes its CRLs over HTTP, but it may not be listening (tests, the moment of
first start), so pyhanko's fetchers are given a ``CrlSource`` that answers for our URLs and,
optionally, a network fetcher for everything else (a production root operated elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from asn1crypto import cms, crl, ocsp, x509
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.authority import Authority
from pyhanko_certvalidator.errors import CRLFetchError, OCSPFetchError
from pyhanko_certvalidator.fetchers.api import CertificateFetcher, CRLFetcher, Fetchers, OCSPFetcher
from pyhanko_certvalidator.fetchers.common_utils import enumerate_delivery_point_urls
from pyhanko_certvalidator.util import get_relevant_crl_dps, issuer_serial

CrlSource = Callable[[str], bytes | None]
"""Returns the DER CRL published at a URL, or None when the URL is not ours."""


def combine_sources(*sources: CrlSource) -> CrlSource:
    def lookup(url: str) -> bytes | None:
        for source in sources:
            found = source(url)
            if found is not None:
                return found
        return None

    return lookup


class SourceCrlFetcher(CRLFetcher):
    def __init__(self, source: CrlSource, fallback: CRLFetcher | None = None) -> None:
        self._source = source
        self._fallback = fallback
        self._by_cert: dict[bytes, list[crl.CertificateList]] = {}

    async def fetch(
        self, cert: x509.Certificate | cms.AttributeCertificateV2, *, use_deltas: Any = None
    ) -> Iterable[crl.CertificateList]:
        key = issuer_serial(cert)
        if key in self._by_cert:
            return self._by_cert[key]
        results: list[crl.CertificateList] = []
        unknown: list[str] = []
        for dp in get_relevant_crl_dps(cert, use_deltas=bool(use_deltas)):
            for url in enumerate_delivery_point_urls(dp):
                der = self._source(url)
                if der is None:
                    unknown.append(url)
                else:
                    results.append(crl.CertificateList.load(der))
        if not results and unknown:
            if self._fallback is None:
                raise CRLFetchError(f"no CRL source for {', '.join(unknown)}")
            results = list(await self._fallback.fetch(cert, use_deltas=use_deltas))
        self._by_cert[key] = results
        return results

    def fetched_crls(self) -> Iterable[crl.CertificateList]:
        return [c for lst in self._by_cert.values() for c in lst]

    def fetched_crls_for_cert(
        self, cert: x509.Certificate | cms.AttributeCertificateV2
    ) -> Iterable[crl.CertificateList]:
        return self._by_cert[issuer_serial(cert)]


class _NoOcsp(OCSPFetcher):
    # Our certificates name no OCSP responder: CRLs keep poppler's trust check reliable.
    async def fetch(
        self, cert: x509.Certificate | cms.AttributeCertificateV2, authority: Authority
    ) -> ocsp.OCSPResponse:
        raise OCSPFetchError("OCSP is not used")

    def fetched_responses(self) -> Iterable[ocsp.OCSPResponse]:
        return ()

    def fetched_responses_for_cert(
        self, cert: x509.Certificate | cms.AttributeCertificateV2
    ) -> Iterable[ocsp.OCSPResponse]:
        return ()


class _NoCertFetch(CertificateFetcher):
    # Chains are configured explicitly; following AIA URLs would be network I/O nobody asked for.
    async def fetch_cert_issuers(self, cert: Any) -> Any:  # pragma: no cover - never called
        return
        yield

    async def fetch_crl_issuers(self, certificate_list: Any) -> Any:  # pragma: no cover
        return
        yield

    def fetched_certs(self) -> Iterable[x509.Certificate]:
        return ()


def signing_validation_context(
    trust_roots: Sequence[x509.Certificate],
    crl_source: CrlSource,
    other_certs: Sequence[x509.Certificate] = (),
    fallback: CRLFetcher | None = None,
) -> ValidationContext:
    """A context that checks the signer's chain before signing and collects CRLs to embed."""
    fetchers = Fetchers(
        ocsp_fetcher=_NoOcsp(),
        crl_fetcher=SourceCrlFetcher(crl_source, fallback),
        cert_fetcher=_NoCertFetch(),
    )
    return ValidationContext(
        trust_roots=list(trust_roots),
        other_certs=list(other_certs),
        allow_fetching=True,
        fetchers=fetchers,
        revocation_mode="hard-fail",
    )


class HttpCrlSource:
    """Fetches CRLs published elsewhere (a production root's), cached until their nextUpdate.

    Blocking on purpose: the signing pipeline runs in a worker thread with its own loop.
    """

    def __init__(self, timeout_s: float = 10.0, max_bytes: int = 10 * 1024 * 1024) -> None:
        self._timeout = timeout_s
        self._max = max_bytes
        self._cache: dict[str, tuple[bytes, Any]] = {}

    def __call__(self, url: str) -> bytes | None:
        import urllib.request
        from datetime import UTC, datetime

        if not url.startswith(("http://", "https://")):
            return None
        cached = self._cache.get(url)
        if cached is not None and cached[1] is not None and cached[1] > datetime.now(UTC):
            return cached[0]
        try:
            with urllib.request.urlopen(url, timeout=self._timeout) as resp:
                data = resp.read(self._max + 1)
            if len(data) > self._max:
                return None
            parsed = crl.CertificateList.load(data)
            next_update = parsed["tbs_cert_list"]["next_update"].native
        except (OSError, ValueError):
            return None
        self._cache[url] = (data, next_update)
        return data
