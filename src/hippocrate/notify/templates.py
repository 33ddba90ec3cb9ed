"""Email templates. They take a verification code and links, nothing else."""

from __future__ import annotations

TEMPLATES: dict[str, tuple[str, str]] = {
    "verify_email": (
        "Hippocrate : confirmez votre adresse",
        "Bonjour,\n\nPour confirmer votre adresse, ouvrez ce lien : {link}\n",
    ),
    "reset_password": (
        "Hippocrate : réinitialisation du mot de passe",
        "Bonjour,\n\nPour choisir un nouveau mot de passe, ouvrez ce lien : {link}\n"
        "Si vous n'avez rien demandé, ignorez ce message.\n",
    ),
    "new_message": (
        "Hippocrate : un nouveau message vous attend",
        "Bonjour,\n\nUn nouveau message vous attend dans votre espace Hippocrate.\n",
    ),
}

FOOTER = (
    "\nCode de vérification : {code}\n"
    "Ce code figure aussi dans votre espace, rubrique « Messages reçus » : s'il n'y est pas,"
    " ce message ne vient pas de nous.\n"
    "Hippocrate ne vous demande jamais de mot de passe, de code ou de paiement par email.\n"
    "Connectez-vous en tapant vous-même l'adresse {public_url}\n"
)


def render(template: str, *, code: str, links: dict[str, str], public_url: str) -> tuple[str, str]:
    subject, body = TEMPLATES[template]
    text = body.format(link=links.get("link", "")) + FOOTER.format(code=code, public_url=public_url)
    return subject, text
