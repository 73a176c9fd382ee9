"""Certificate verification for every connection. It is on unless the command line says
--insecure-skip-tls-verify; a server whose certificate is not trusted stops the command with one
line that names it and the way to trust its CA."""

from __future__ import annotations

import ssl

from migrator.errors import MigratorError

INSECURE_OPTION = "--insecure-skip-tls-verify"
INSECURE_WARNING = (f"migrator: warning: {INSECURE_OPTION}: server certificates are NOT verified on any connection of this command, "
                    "so anyone on the network path can read and change the data and the credentials; the ledger records it "
                    "and every report shows it")
_TRUST_HINT = "or set ca_bundle in that server's section of the config; the system's CAs are trusted already"


class UntrustedCertificate(MigratorError):
    """A server's certificate failed verification: nothing can be moved to or from it as configured."""

    exit_code = 2

    def __init__(self, server: str, reason: str) -> None:
        super().__init__(f"the TLS certificate of {server} is not trusted ({reason}): pass --ca-bundle FILE with the CA that signed it",
                         hint=_TRUST_HINT)
        self.server = server


def httpx_verify(ca_file: str | None, skip_verify: bool = False) -> ssl.SSLContext | bool:
    """What an httpx client or transport takes as `verify`."""
    if skip_verify:
        return False
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


def ssl_context(ca_file: str | None, skip_verify: bool = False) -> ssl.SSLContext:
    """A client context for raw sockets (IMAP): the system's CAs or `ca_file`, or no checks at all."""
    context = ssl.create_default_context(cafile=ca_file)
    if skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def certificate_failure(exc: BaseException) -> str | None:
    """The verifier's reason when `exc`, or what it wraps, is a failed certificate check, else None.
    httpx, requests and urllib3 nest the ssl error in causes, contexts, `reason` or args; where only
    its text survived, the text says so."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    said_so = False
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return getattr(current, "verify_message", None) or "certificate verify failed"
        said_so = said_so or "CERTIFICATE_VERIFY_FAILED" in str(current)
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None), *current.args])
    return "certificate verify failed" if said_so else None


def untrusted(exc: BaseException, server: str) -> UntrustedCertificate | None:
    reason = certificate_failure(exc)
    return UntrustedCertificate(server, reason) if reason is not None else None
