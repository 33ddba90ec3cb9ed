"""Build the configured key provider and vault; fails closed on any problem."""

from __future__ import annotations

from pathlib import Path

from hippocrate.config import KeyProviderKind, Settings
from hippocrate.vault.core import Vault
from hippocrate.vault.errors import KeyProviderError
from hippocrate.vault.providers.base import KeyProvider


def open_provider(settings: Settings) -> KeyProvider:
    """The provider the settings name. Never falls back to another one."""
    if settings.key_provider is KeyProviderKind.FILE:
        from hippocrate.vault.providers.file import FileKeyProvider

        return FileKeyProvider(
            settings.resolved_key_file, signing_key_file=settings.audit_signing_key_file
        )
    _no_signing_key_file(settings)
    from hippocrate.vault.providers.pkcs11 import Pkcs11KeyProvider

    module, token, pin = _pkcs11_settings(settings)
    return Pkcs11KeyProvider(module=module, token_label=token, pin=pin)


def initialise_provider(settings: Settings) -> KeyProvider:
    """Create the root and index keys where the settings say (``hippocrate init``)."""
    if settings.key_provider is KeyProviderKind.FILE:
        from hippocrate.vault.providers.file import FileKeyProvider

        return FileKeyProvider.initialise(
            settings.resolved_key_file, signing_key_file=settings.audit_signing_key_file
        )
    _no_signing_key_file(settings)
    from hippocrate.vault.providers.pkcs11 import Pkcs11KeyProvider

    module, token, pin = _pkcs11_settings(settings)
    return Pkcs11KeyProvider.initialise(module=module, token_label=token, pin=pin)


def _no_signing_key_file(settings: Settings) -> None:
    """A signing key file set for the HSM would be silently ignored: refuse it."""
    if settings.audit_signing_key_file is not None:
        raise KeyProviderError(
            "HIPPOCRATE_AUDIT_SIGNING_KEY_FILE is for the file key provider; with pkcs11 "
            "the audit signing key is in the token: unset it"
        )
    if settings.document_signing_key_file is not None:
        raise KeyProviderError(
            "HIPPOCRATE_DOCUMENT_SIGNING_KEY_FILE is for the file key provider; with pkcs11 "
            "the document signing key is in the token: unset it"
        )


def _pkcs11_settings(settings: Settings) -> tuple[Path, str, str]:
    missing = [
        name
        for name, value in (
            ("HIPPOCRATE_PKCS11_MODULE", settings.pkcs11_module),
            ("HIPPOCRATE_PKCS11_TOKEN", settings.pkcs11_token),
            ("HIPPOCRATE_PKCS11_PIN", settings.pkcs11_pin),
        )
        if not value
    ]
    if missing:
        raise KeyProviderError(f"the PKCS#11 key provider needs {', '.join(missing)}")
    assert settings.pkcs11_module is not None
    assert settings.pkcs11_token is not None
    assert settings.pkcs11_pin is not None
    return settings.pkcs11_module, settings.pkcs11_token, settings.pkcs11_pin.get_secret_value()


def open_vault(settings: Settings) -> Vault:
    return Vault(
        open_provider(settings),
        cache_size=settings.key_cache_size,
        cache_ttl=settings.key_cache_ttl,
        unwrap_budget=settings.key_unwrap_budget,
        unwrap_budgets={
            "anonymous": settings.key_unwrap_budget_anonymous,
            "recovery": settings.key_unwrap_budget_recovery,
        },
    )
