"""PKI (dev CA, one-shot signer certificates, seal, TSA), PDF signing and validation.

Stand-alone: never imports ``rtc_server`` or ``recordings``. Everything that signs or validates
is synchronous and CPU-bound: run it in a worker thread, not on the event loop.
"""

from .authority import CertificateAuthority
from .config import signing_config_from_mapping
from .devpki import DevPki
from .errors import (
    KeySourceError,
    PdfInputError,
    PdfSigningError,
    PkiError,
    SigningConfigError,
    SigningError,
    TimestampError,
)
from .evidence_pdf import CompletionRecord, CompletionStep, EvidenceAttachment, RecordingDigest
from .keys import (
    InMemoryKey,
    KeySource,
    KeySourceConfig,
    Pkcs11KeyConfig,
    Pkcs11KeySource,
    Pkcs12KeyConfig,
    Pkcs12KeySource,
    SigningKey,
    key_source_from_config,
)
from .oneshot import SignerIdentity, id_number_hash, issue_one_shot, verify_id_number
from .pdfsign import ContractSigningRequest, SignedPdf, SigningMaterial, seal_pdf, sign_contract
from .revocation import CrlSource, HttpCrlSource
from .service import SigningConfig, SigningService
from .tsa import (
    TSA_CONTENT_TYPE,
    TSA_REQUEST_CONTENT_TYPE,
    GuardedTimeStamper,
    HttpTsaConfig,
    LocalTimeStamper,
    LocalTsa,
    http_timestamper,
)
from .validate import SignatureReport, ValidationReport, load_trust_roots, validate_pdf, verify_pdf_main

__all__ = [
    "TSA_CONTENT_TYPE",
    "TSA_REQUEST_CONTENT_TYPE",
    "CertificateAuthority",
    "CompletionRecord",
    "CompletionStep",
    "ContractSigningRequest",
    "CrlSource",
    "DevPki",
    "EvidenceAttachment",
    "GuardedTimeStamper",
    "HttpCrlSource",
    "HttpTsaConfig",
    "InMemoryKey",
    "KeySource",
    "KeySourceConfig",
    "KeySourceError",
    "LocalTimeStamper",
    "LocalTsa",
    "PdfInputError",
    "PdfSigningError",
    "Pkcs11KeyConfig",
    "Pkcs11KeySource",
    "Pkcs12KeyConfig",
    "Pkcs12KeySource",
    "PkiError",
    "RecordingDigest",
    "SignatureReport",
    "SignedPdf",
    "SignerIdentity",
    "SigningConfig",
    "SigningConfigError",
    "SigningError",
    "SigningKey",
    "SigningMaterial",
    "SigningService",
    "TimestampError",
    "ValidationReport",
    "http_timestamper",
    "id_number_hash",
    "issue_one_shot",
    "key_source_from_config",
    "load_trust_roots",
    "seal_pdf",
    "sign_contract",
    "signing_config_from_mapping",
    "validate_pdf",
    "verify_id_number",
    "verify_pdf_main",
]
