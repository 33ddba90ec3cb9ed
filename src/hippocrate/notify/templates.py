"""Email templates: fixed French texts, one layout, three variable parts.

Every email has the same recognisable form: a fixed subject starting ``Hippocrate :``,
a fixed text saying what waits in the app, a framed verification code, and the same
warnings. A template takes only the verification code, the platform's public URL and,
for ``verify_email``, ``reset_password`` and ``invitation``, one link to the platform carrying a
single-use token (see :func:`token_link`). There is no parameter for a name, a subject,
a message or any other text, so no caller can put health data in an email.

The texts are Python constants rather than template files: with three variables and no
logic, a template engine would add a way to get things wrong (autoescape settings,
undefined variables rendering as empty) and nothing a reader needs.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import urlsplit


class UnknownTemplate(ValueError):
    """No template of that name."""


class UnsafeLink(ValueError):
    """A link that is not the template's own single-use token link on the platform."""


@dataclass(frozen=True)
class Template:
    """The fixed content of one kind of email."""

    name: str
    subject: str
    paragraphs: tuple[str, ...]
    # Templates with a link: the fixed path on the platform the token link must use,
    # and the sentence that introduces the link.
    link_path: str | None = None
    link_intro: str = ""
    closing: tuple[str, ...] = ()
    # How the recipient can tell the email is genuine: "app" (the code is listed in
    # their space), "link" (they cannot sign in yet: the link's address tells), "none"
    # (the account is gone).
    check: str = "app"


_GO_TO_APP = (
    "Pour y accéder, connectez-vous à votre espace en tapant vous-même l'adresse "
    "{public_url} dans votre navigateur."
)
_NOT_YOU = (
    "Si vous n'êtes pas à l'origine de cette action, connectez-vous dès que possible "
    "(en tapant vous-même l'adresse {public_url}), changez votre mot de passe et "
    "activez la double authentification."
)

TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            name="verify_email",
            subject="Hippocrate : confirmez votre adresse email",
            paragraphs=(
                "Pour terminer la création de votre compte Hippocrate, confirmez votre "
                "adresse email.",
            ),
            link_path="/account/verify-email",
            check="link",
            link_intro="Ouvrez ce lien pour confirmer votre adresse (il ne sert qu'une fois) :",
            closing=(
                "Si vous n'avez pas créé de compte Hippocrate, ignorez ce message : "
                "aucun compte ne sera activé.",
            ),
        ),
        Template(
            name="reset_password",
            subject="Hippocrate : choisissez un nouveau mot de passe",
            paragraphs=("Un nouveau mot de passe a été demandé pour votre compte Hippocrate.",),
            link_path="/account/reset-password",
            check="link",
            link_intro=(
                "Ouvrez ce lien pour choisir un nouveau mot de passe (il ne sert qu'une fois) :"
            ),
            closing=(
                "Si vous n'avez rien demandé, ignorez ce message : votre mot de passe "
                "reste inchangé.",
            ),
        ),
        # A patient brought in from another platform: their account waits for them to
        # choose a password; nobody chose one for them.
        Template(
            name="invitation",
            subject="Hippocrate : votre compte vous attend",
            paragraphs=(
                "Votre dossier de téléconsultation a été transféré sur Hippocrate. Un "
                "compte a été préparé à cette adresse email ; personne n'en connaît le mot "
                "de passe : c'est vous qui le choisissez.",
            ),
            link_path="/account/reset-password",
            check="link",
            link_intro=(
                "Ouvrez ce lien pour choisir votre mot de passe (il ne sert qu'une fois et "
                "reste valable un mois) :"
            ),
            closing=(
                "Hippocrate ne vous demandera jamais votre mot de passe, ni par email ni par "
                "téléphone. Si ce transfert ne vous dit rien, ignorez ce message : le compte "
                "reste inutilisable tant qu'aucun mot de passe n'est choisi.",
            ),
        ),
        Template(
            name="new_message",
            subject="Hippocrate : un nouveau message vous attend",
            paragraphs=(
                "Un nouveau message vous attend dans votre espace Hippocrate.",
                _GO_TO_APP,
            ),
        ),
        Template(
            name="consultation_taken",
            subject="Hippocrate : votre demande a été prise en charge",
            paragraphs=(
                "Un professionnel de santé a pris en charge votre demande de consultation. "
                "Vous pouvez suivre l'échange dans votre espace Hippocrate.",
                _GO_TO_APP,
            ),
        ),
        Template(
            name="report_ready",
            subject="Hippocrate : un compte rendu est disponible",
            paragraphs=(
                "Un compte rendu est disponible dans votre espace Hippocrate.",
                _GO_TO_APP,
            ),
        ),
        Template(
            name="consultation_cancelled",
            subject="Hippocrate : une demande de consultation a été annulée",
            paragraphs=(
                "Une de vos demandes de consultation sur Hippocrate a été annulée. Le détail "
                "est dans votre espace.",
                _GO_TO_APP,
            ),
        ),
        # To a practitioner: a patient wrote in a consultation they hold.
        Template(
            name="patient_replied",
            subject="Hippocrate : un patient vous a répondu",
            paragraphs=(
                "Un patient a écrit dans une consultation que vous suivez sur Hippocrate.",
                _GO_TO_APP,
            ),
        ),
        Template(
            name="account_locked",
            subject="Hippocrate : connexion à votre compte bloquée",
            paragraphs=(
                "Après plusieurs tentatives de connexion infructueuses, la connexion à "
                "votre compte Hippocrate est bloquée pour un moment.",
                "Si c'était vous, réessayez plus tard. Sinon, quelqu'un essaie peut-être "
                "d'accéder à votre compte : une fois connecté (en tapant vous-même "
                "l'adresse {public_url}), changez votre mot de passe et activez la "
                "double authentification.",
            ),
        ),
        Template(
            name="second_factor_locked",
            subject="Hippocrate : votre compte est bloqué par sécurité",
            paragraphs=(
                "Votre mot de passe Hippocrate a été saisi correctement, puis plusieurs "
                "codes de double authentification erronés. Par sécurité, votre compte "
                "est bloqué : plus personne ne peut s'y connecter, pas même avec le bon "
                "code.",
                "Si ce n'était pas vous, quelqu'un connaît sans doute votre mot de passe. "
                "Contactez le support depuis {public_url} (en tapant vous-même "
                "l'adresse) pour débloquer votre compte, puis changez votre mot de passe.",
            ),
        ),
        Template(
            name="security_alert",
            subject="Hippocrate : la sécurité de votre compte a changé",
            paragraphs=(
                "Un réglage de sécurité de votre compte Hippocrate vient de changer : "
                "mot de passe, second facteur d'authentification ou codes de secours.",
                "Si c'était vous, vous n'avez rien à faire.",
                _NOT_YOU,
            ),
        ),
        # A recovery code opened a session: the owner learns it at once, since a thief
        # holding the password and a printed code would otherwise pass unnoticed.
        Template(
            name="recovery_code_used",
            subject="Hippocrate : un code de secours a été utilisé",
            paragraphs=(
                "Un de vos codes de secours vient d'être utilisé pour vous connecter à "
                "votre compte Hippocrate. Ce code ne servira plus.",
                "Si c'était vous, pensez à générer de nouveaux codes de secours depuis "
                "votre espace.",
                _NOT_YOU,
            ),
        ),
        # The guard suspended the account (docs/GUARD.md): its owner is told, without
        # the reason (it could tell a thief which limit they reached).
        Template(
            name="account_suspended",
            subject="Hippocrate : votre compte est suspendu par sécurité",
            paragraphs=(
                "Par sécurité, votre compte Hippocrate vient d'être suspendu : une activité "
                "inhabituelle y a été détectée. Plus personne ne peut s'y connecter pour le "
                "moment, et toutes ses sessions ont été fermées.",
                "Pour le rétablir, contactez l'équipe de Hippocrate ou votre administrateur "
                "depuis {public_url} (en tapant vous-même l'adresse). Si quelqu'un d'autre "
                "a pu connaître votre mot de passe, dites-le.",
            ),
        ),
        # Four-eyes approvals: to every active administrator when one asks for an action
        # a second must approve, then to the one who asked and the one who decided.
        Template(
            name="approval_requested",
            subject="Hippocrate : une action attend une seconde validation",
            paragraphs=(
                "Un administrateur de Hippocrate a demandé une action sensible (libérer un "
                "compte bloqué par sécurité, réinitialiser l'accès d'un compte "
                "professionnel ou créer un administrateur). Elle n'aura lieu que si un "
                "autre administrateur la valide, dans la journée.",
                "Pour la voir, la valider ou la refuser, connectez-vous à votre espace en "
                "tapant vous-même l'adresse {public_url} dans votre navigateur. Celui qui a "
                "demandé l'action ne peut pas la valider lui-même.",
            ),
        ),
        Template(
            name="approval_decided",
            subject="Hippocrate : une action d'administration a été décidée",
            paragraphs=(
                "Une action d'administration soumise à double validation vient d'être "
                "validée ou refusée. Vous en êtes le demandeur ou le décideur.",
                "Le détail est dans votre espace : connectez-vous en tapant vous-même "
                "l'adresse {public_url} dans votre navigateur.",
                "Si vous n'avez ni demandé ni décidé cette action, prévenez sans attendre "
                "les autres administrateurs : votre compte est peut-être utilisé par "
                "quelqu'un d'autre.",
            ),
        ),
        # Break-glass: the patient learns at once that their record was opened.
        Template(
            name="break_glass_opened",
            subject="Hippocrate : votre dossier a été ouvert en accès d'urgence",
            paragraphs=(
                "Une personne habilitée de Hippocrate vient d'ouvrir votre dossier en "
                "accès d'urgence, pour une durée limitée et avec un motif enregistré.",
                "Vous pouvez voir qui a accédé à votre dossier, quand et pourquoi, dans "
                "votre espace, rubrique « Qui a consulté mon dossier ».",
                _GO_TO_APP,
            ),
        ),
        Template(
            name="account_deleted",
            subject="Hippocrate : votre compte a été supprimé",
            paragraphs=(
                "Votre compte Hippocrate a été supprimé, ainsi que les données qui y "
                "étaient rattachées. Ce message est le dernier que vous recevrez de nous.",
                "Si vous n'avez pas demandé cette suppression, rendez-vous sur "
                "{public_url} en tapant vous-même l'adresse dans votre navigateur.",
            ),
            check="none",
        ),
    )
}

_CHECKS = {
    "app": (
        "Pour vérifier que ce message vient bien de Hippocrate, connectez-vous à votre "
        "espace (en tapant vous-même l'adresse {public_url}) et ouvrez la rubrique "
        "« Emails reçus » : ce code doit y figurer. S'il n'y figure pas, ce message ne "
        "vient pas de nous : n'ouvrez aucun lien et ne répondez pas."
    ),
    "link": (
        "Avant d'ouvrir le lien, vérifiez qu'il commence exactement par {public_url}/ : "
        "sinon, ce message ne vient pas de nous. Une fois connecté, vous retrouverez ce "
        "code dans votre espace, rubrique « Emails reçus »."
    ),
    "none": (
        "Votre compte étant supprimé, ce code ne peut plus être vérifié. Ce message ne "
        "contient aucun lien et ne vous demande rien : quiconque vous contacte à son "
        "sujet pour vous demander quoi que ce soit tente une fraude."
    ),
}
_NEVER = (
    "Hippocrate n'envoie jamais d'information médicale par email, et ne vous demande "
    "jamais, par email ou par téléphone, votre mot de passe, un code, votre numéro de "
    "sécurité sociale ou un paiement."
)
_AUTOMATIC = "Message automatique : merci de ne pas y répondre."

# A single-use token as the platform makes them (secrets.token_urlsafe): opaque, and
# too constrained to carry words with spaces or accents.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,128}")


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def names() -> list[str]:
    return sorted(TEMPLATES)


def template_for(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise UnknownTemplate(f"no email template named {name!r}") from None


def token_link(*, template: str, token: str, public_url: str) -> str:
    """The link a ``verify_email`` or ``reset_password`` email carries for ``token``.

    Callers should build their link with this function: :func:`render` accepts no other.
    """
    path = template_for(template).link_path
    if path is None:
        raise UnsafeLink(f"the {template!r} email carries no link")
    if not _TOKEN.fullmatch(token):
        raise UnsafeLink("a token is 32 to 128 characters from A-Z, a-z, 0-9, '_' and '-'")
    return f"{_base(public_url)}{path}?token={token}"


def check_link(template: Template, link: str | None, public_url: str) -> None:
    """Refuse any link but the template's own token link on the platform.

    Guaranteed: an accepted link is ``<public_url><fixed path>?token=<opaque>``;
    the only free part is a token of URL-safe characters. Not guaranteed: that the
    token is a live one (the identity domain owns tokens).
    """
    if template.link_path is None:
        if link is not None:
            raise UnsafeLink(f"the {template.name!r} email carries no link")
        return
    if link is None:
        raise UnsafeLink(f"the {template.name!r} email needs its token link")
    prefix = f"{_base(public_url)}{template.link_path}?token="
    if not link.startswith(prefix) or not _TOKEN.fullmatch(link.removeprefix(prefix)):
        raise UnsafeLink(
            f"the {template.name!r} link must be {prefix}<token>: build it with token_link()"
        )


@dataclass(frozen=True)
class _Parts:
    """One email's content, every piece fixed but the code, the link and the URL."""

    subject: str
    paragraphs: list[str]
    link_intro: str
    link: str | None
    closing: list[str]
    code: str
    check: str


def render(template: str, *, code: str, link: str | None, public_url: str) -> Rendered:
    """The subject, plain-text and HTML parts of one email.

    ``code`` is the message's verification code, ``public_url`` the platform's address
    and ``link`` the token link of templates that have one (checked by
    :func:`check_link`). Nothing else varies from one email to the next.
    """
    t = template_for(template)
    check_link(t, link, public_url)
    base = _base(public_url)
    parts = _Parts(
        subject=t.subject,
        paragraphs=[p.format(public_url=base) for p in t.paragraphs],
        link_intro=t.link_intro,
        link=link,
        closing=[p.format(public_url=base) for p in t.closing],
        code=code,
        check=_CHECKS[t.check].format(public_url=base),
    )
    return Rendered(subject=t.subject, text=_text(parts), html=_html(parts))


def _base(public_url: str) -> str:
    """The platform's address without a trailing slash; refuses credentials, a query or
    a fragment in it (it is printed in every email)."""
    parts = urlsplit(public_url)
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
    ):
        raise UnsafeLink("the public URL must be http(s)://host[:port][/path], nothing more")
    return public_url.rstrip("/")


def _text(p: _Parts) -> str:
    blocks = ["Hippocrate", "Bonjour,", *p.paragraphs]
    if p.link is not None:
        blocks.append(f"{p.link_intro}\n{p.link}")
    blocks += p.closing
    blocks += ["-" * 40, f"Code de vérification : {p.code}\n{p.check}", _NEVER, _AUTOMATIC]
    return "\n\n".join(blocks) + "\n"


_BODY = (
    "margin:0;padding:24px;background:#ffffff;color:#1a1a1a;"
    "font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.5"
)
_BRAND = "margin:0 0 16px;font-size:20px;font-weight:bold;color:#0b4f8a"
_FRAME = "margin:24px 0;padding:12px 16px;border:2px solid #0b4f8a;border-radius:6px"
_CODE = "font-family:Consolas,Menlo,monospace;font-size:20px;letter-spacing:2px"
_SMALL = "font-size:13px;color:#555555"


def _html(p: _Parts) -> str:
    def e(text: str) -> str:
        return html.escape(text, quote=False)

    body = [f'<p style="{_BRAND}">Hippocrate</p>', "<p>Bonjour,</p>"]
    body += [f"<p>{e(text)}</p>" for text in p.paragraphs]
    if p.link is not None:
        # The link shows its own address: what the reader sees is where it goes.
        body.append(f'<p>{e(p.link_intro)}<br><a href="{html.escape(p.link)}">{e(p.link)}</a></p>')
    body += [f"<p>{e(text)}</p>" for text in p.closing]
    body.append(
        f'<div style="{_FRAME}">'
        '<p style="margin:0">Code de vérification : '
        f'<strong style="{_CODE}">{e(p.code)}</strong></p>'
        f'<p style="margin:8px 0 0">{e(p.check)}</p>'
        "</div>"
    )
    body += [f'<p style="{_SMALL}">{e(_NEVER)}</p>', f'<p style="{_SMALL}">{e(_AUTOMATIC)}</p>']
    return (
        "<!DOCTYPE html>\n"
        '<html lang="fr">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{e(p.subject)}</title>\n</head>\n"
        f'<body style="{_BODY}">\n<div style="max-width:560px;margin:0 auto">\n'
        + "\n".join(body)
        + "\n</div>\n</body>\n</html>\n"
    )
