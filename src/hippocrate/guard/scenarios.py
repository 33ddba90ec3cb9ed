"""What synthetic consultations say (the demo's and the honeytokens'): one short,
plausible case per scenario, written in French (generic situations, no real person, no
real record).

A scenario gives the patient's request and questionnaire, the practitioner's question,
the patient's answer with a file (a photo or a PDF document), the advice, and what the
closed record holds (report, act codes, prescription). Texts may use ``{e}`` (feminine
agreement for the patient), ``{il}``/``{Il}`` and ``{le}`` (pronouns for a child, for
paediatrics, where a parent writes): :func:`say` fills them for the patient's sex.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FileKind = Literal["photo", "pdf"]


@dataclass(frozen=True)
class Document:
    """A file the patient sends: a photo (PNG or JPEG by its name) or a PDF."""

    filename: str
    kind: FileKind
    title: str = ""
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scenario:
    specialty: str
    subject: str
    description: str
    duration: str  # a choice of the questionnaire's symptoms_duration
    treatments: str
    question: str  # the practitioner's first message
    answer: str  # the patient's reply, sent with ``document``
    document: Document
    advice: str
    report: str
    prescription: str | None
    acts: tuple[str, ...] = ("TC",)
    ages: tuple[int, int] = (16, 95)
    women_only: bool = False

    def fits(self, *, age: int, sex: str) -> bool:
        return self.ages[0] <= age <= self.ages[1] and (not self.women_only or sex == "F")


def say(text: str, *, sex: str) -> str:
    """``text`` with its agreement and pronoun placeholders filled for ``sex``."""
    if sex == "F":
        return text.format(e="e", il="elle", Il="Elle", le="la")
    return text.format(e="", il="il", Il="Il", le="le")


ALLERGIES = ("aucune", "aucune", "aucune", "pénicilline", "pollens de graminées", "acariens")

CANCEL_NOTES = (
    "Finalement, j'ai pu avoir un rendez-vous avec mon médecin traitant cet après-midi. Merci.",
    "Les symptômes ont disparu depuis ce matin, je préfère annuler ma demande.",
    "Erreur de spécialité de ma part, je refais une demande. Toutes mes excuses.",
    "Mon pharmacien m'a bien conseillé, je n'ai plus besoin de la consultation.",
)

THANKS = (
    "Merci beaucoup pour votre réponse rapide, c'est très clair.",
    "Merci docteur, cela me rassure.",
    "D'accord, je vais suivre vos conseils. Bonne journée.",
)

INCIDENTS = (
    "Connexion du patient interrompue une quinzaine de minutes ; l'échange a repris ensuite.",
    "Première photo floue et inexploitable ; le patient en a envoyé une seconde, nette.",
    "Pièce jointe reçue en double ; la seconde copie n'a pas été prise en compte.",
)

SCENARIOS: tuple[Scenario, ...] = (
    # -- general practice --------------------------------------------------------------
    Scenario(
        specialty="general-practice",
        subject="Toux et fièvre depuis trois jours",
        description=(
            "J'ai de la fièvre autour de 38,5 °C depuis trois jours, une toux sèche et des "
            "courbatures. Pas de gêne pour respirer. Plusieurs collègues ont été malades "
            "la semaine dernière."
        ),
        duration="1_to_3_days",
        treatments="paracétamol depuis hier",
        question=(
            "Bonjour, avez-vous du mal à respirer, une douleur dans la poitrine, ou une "
            "fièvre au-delà de 39 °C ? Avez-vous pu faire un test antigénique ?"
        ),
        answer=(
            "Pas de difficulté pour respirer, la fièvre n'a pas dépassé 38,8 °C. Le test "
            "fait en pharmacie ce matin est négatif, je vous joins le résultat."
        ),
        document=Document(
            "resultat-test-antigenique.pdf",
            "pdf",
            "Résultat de test antigénique",
            (
                "Test rapide antigénique réalisé en officine",
                "Prélèvement nasopharyngé",
                "Résultat : NÉGATIF",
            ),
        ),
        advice=(
            "Merci. Le tableau évoque une infection virale. Reposez-vous, buvez bien, "
            "paracétamol si besoin. Reconsultez si la fièvre dure plus de 5 jours ou si vous "
            "vous essoufflez."
        ),
        report=(
            "Syndrome grippal évoluant depuis 3 jours, sans signe de gravité (pas de dyspnée, "
            "pas de douleur thoracique, fièvre maximale 38,8 °C). Test antigénique négatif. "
            "Traitement symptomatique, arrêt de travail de 3 jours. Reconsulter si la fièvre "
            "persiste au-delà de 5 jours ou en cas de dyspnée."
        ),
        prescription=(
            "Paracétamol 1 g : 1 comprimé jusqu'à 3 fois par jour si fièvre ou douleurs, "
            "en espaçant les prises d'au moins 6 heures, pendant 5 jours au plus."
        ),
        acts=("TCG",),
    ),
    Scenario(
        specialty="general-practice",
        subject="Brûlures en urinant",
        description=(
            "Depuis hier, j'ai des brûlures en urinant et des envies très fréquentes. "
            "Pas de fièvre ni de douleur dans le dos."
        ),
        duration="less_than_a_day",
        treatments="aucun",
        question=(
            "Bonjour, avez-vous de la fièvre, des douleurs dans le bas du dos, du sang dans "
            "les urines ? Avez-vous déjà eu une cystite cette année ?"
        ),
        answer=(
            "Pas de fièvre, pas de douleur dans le dos, pas de sang. C'est la première fois "
            "cette année. La bandelette achetée en pharmacie est positive, voici le résultat."
        ),
        document=Document(
            "bandelette-urinaire.pdf",
            "pdf",
            "Bandelette urinaire",
            ("Leucocytes : positif (++)", "Nitrites : positif", "Sang : négatif"),
        ),
        advice=(
            "Il s'agit d'une cystite simple. Je vous prescris un traitement en une seule "
            "prise. Buvez abondamment ; si de la fièvre ou une douleur lombaire apparaît, "
            "consultez rapidement."
        ),
        report=(
            "Cystite aiguë simple chez une patiente non enceinte, sans signe de "
            "pyélonéphrite. Bandelette urinaire positive (leucocytes, nitrites). Traitement "
            "probabiliste en prise unique. Consignes de reconsultation données."
        ),
        prescription=(
            "Fosfomycine trométamol 3 g : 1 sachet en prise unique, à distance des repas, "
            "de préférence le soir au coucher."
        ),
        acts=("TCG",),
        ages=(18, 65),
        women_only=True,
    ),
    Scenario(
        specialty="general-practice",
        subject="Renouvellement de mon traitement contre l'hypertension",
        description=(
            "Mon médecin traitant est en congé et il ne me reste que quatre jours de "
            "traitement. Ma tension est stable, je la mesure chaque semaine."
        ),
        duration="no_symptoms",
        treatments="amlodipine 5 mg, un comprimé le matin",
        question=(
            "Bonjour, pouvez-vous m'envoyer vos derniers relevés de tension et votre "
            "dernière ordonnance ?"
        ),
        answer="Voici mes relevés des deux dernières semaines.",
        document=Document(
            "releves-tension.pdf",
            "pdf",
            "Relevés d'automesure tensionnelle",
            (
                "Semaine 1 : 132/82, 128/79, 135/84 mmHg",
                "Semaine 2 : 129/80, 131/83, 127/78 mmHg",
                "Pouls : entre 64 et 72 battements par minute",
            ),
        ),
        advice=(
            "Vos chiffres sont bien équilibrés. Je renouvelle votre traitement pour un mois ; "
            "pensez à revoir votre médecin traitant d'ici là."
        ),
        report=(
            "Demande de renouvellement d'un traitement antihypertenseur en l'absence du "
            "médecin traitant. Automesures équilibrées (autour de 130/80 mmHg), aucun "
            "symptôme. Renouvellement pour un mois, suivi à reprendre avec le médecin traitant."
        ),
        prescription="Amlodipine 5 mg : 1 comprimé le matin pendant 1 mois.",
        acts=("TCG",),
        ages=(45, 95),
    ),
    # -- dermatology ---------------------------------------------------------------------
    Scenario(
        specialty="dermatology",
        subject="Plaques rouges qui démangent sur les avant-bras",
        description=(
            "Depuis deux semaines, des plaques rouges et sèches sont apparues sur mes deux "
            "avant-bras. Elles démangent surtout le soir. J'ai changé de lessive il y a un mois."
        ),
        duration="1_to_4_weeks",
        treatments="aucun",
        question=(
            "Bonjour, pouvez-vous m'envoyer une photo nette des plaques, prise à la lumière "
            "du jour ?"
        ),
        answer="Voici une photo prise ce matin près de la fenêtre.",
        document=Document("avant-bras.jpg", "photo"),
        advice=(
            "Merci, la photo est nette. L'aspect évoque un eczéma de contact : revenez à "
            "votre ancienne lessive et appliquez la crème prescrite."
        ),
        report=(
            "Lésions érythémato-squameuses prurigineuses des avant-bras depuis deux "
            "semaines, apparues après un changement de lessive. Aspect photographique "
            "compatible avec un eczéma de contact. Éviction de l'allergène suspecté, "
            "dermocorticoïde 7 jours, émollient. Réévaluation si pas d'amélioration à 15 jours."
        ),
        prescription=(
            "Bétaméthasone crème 0,05 % : une application le soir sur les plaques pendant "
            "7 jours. Émollient : deux applications par jour."
        ),
    ),
    Scenario(
        specialty="dermatology",
        subject="Grain de beauté qui a changé d'aspect",
        description=(
            "Un grain de beauté sur mon dos me paraît plus foncé et plus large qu'il y a "
            "quelques mois. Un proche l'a pris en photo."
        ),
        duration="more_than_a_month",
        treatments="aucun",
        question=(
            "Bonjour, ses bords sont-ils réguliers ? A-t-il saigné ou démangé ? Pouvez-vous "
            "joindre une photo avec une règle à côté, pour l'échelle ?"
        ),
        answer=(
            "Les bords me semblent un peu irréguliers, il n'a pas saigné. Voici la photo "
            "avec une règle."
        ),
        document=Document("grain-de-beaute-dos.png", "photo"),
        advice=(
            "Merci. Par prudence, cette lésion doit être examinée en cabinet au "
            "dermatoscope. Je vous adresse un courrier pour un rendez-vous rapide."
        ),
        report=(
            "Lésion pigmentée du dos modifiée depuis quelques mois selon le patient (taille, "
            "couleur), bords irréguliers sur la photographie, pas de saignement. Examen "
            "dermatoscopique en présentiel nécessaire : courrier remis pour une consultation "
            "rapide."
        ),
        prescription=None,
        ages=(25, 90),
    ),
    Scenario(
        specialty="dermatology",
        subject="Acné qui ne passe pas",
        description=(
            "J'ai de l'acné sur le visage et le haut du dos depuis plus d'un an. Les produits "
            "de la pharmacie n'ont pas suffi."
        ),
        duration="more_than_a_month",
        treatments="gel nettoyant et crème achetés en pharmacie",
        question=(
            "Bonjour, depuis quand utilisez-vous ces produits ? Pouvez-vous envoyer une photo "
            "du visage, de profil ?"
        ),
        answer="Depuis six mois environ. Voici la photo.",
        document=Document("visage-profil.jpg", "photo"),
        advice=(
            "Il s'agit d'une acné modérée. Je vous propose un traitement local pendant trois "
            "mois, le soir. Une irritation les premiers jours est habituelle."
        ),
        report=(
            "Acné inflammatoire modérée du visage et du haut du dos, évoluant depuis plus "
            "d'un an, résistante aux soins cosmétiques. Traitement local (adapalène et "
            "peroxyde de benzoyle) pendant 3 mois, photoprotection. Réévaluation à 3 mois."
        ),
        prescription=(
            "Adapalène / peroxyde de benzoyle gel : une application le soir sur les zones "
            "atteintes pendant 3 mois. Crème hydratante non comédogène le matin."
        ),
        ages=(14, 30),
    ),
    # -- paediatrics (a parent writes) ---------------------------------------------------
    Scenario(
        specialty="paediatrics",
        subject="Fièvre depuis hier soir",
        description=(
            "Mon enfant a de la fièvre (38,9 °C) depuis hier soir. {Il} mange moins mais "
            "boit bien et joue entre les pics de fièvre."
        ),
        duration="less_than_a_day",
        treatments="paracétamol en sirop",
        question=(
            "Bonjour, votre enfant a-t-{il} des boutons, une raideur de la nuque, du mal à "
            "respirer ? Urine-t-{il} normalement ?"
        ),
        answer=(
            "Non, rien de tout cela, {il} urine normalement. Le nez coule beaucoup depuis ce "
            "matin. Je vous joins les températures notées."
        ),
        document=Document(
            "courbe-temperature.pdf",
            "pdf",
            "Températures relevées",
            (
                "Hier 18 h : 38,2 °C",
                "Hier 22 h : 38,9 °C",
                "Ce matin 7 h : 38,4 °C",
                "Ce midi : 38,6 °C",
            ),
        ),
        advice=(
            "Il s'agit très probablement d'une rhinopharyngite virale. Paracétamol adapté au "
            "poids, lavages de nez ; reconsultez si la fièvre dure plus de 3 jours ou si "
            "votre enfant devient somnolent{e}."
        ),
        report=(
            "Enfant fébrile depuis moins de 24 heures, sans signe de gravité (pas de purpura, "
            "pas de raideur méningée, pas de détresse respiratoire, diurèse conservée), "
            "rhinorrhée. Rhinopharyngite virale probable. Antipyrétique adapté au poids, "
            "lavages de nez. Critères de reconsultation expliqués aux parents."
        ),
        prescription=(
            "Paracétamol suspension buvable : une dose-poids toutes les 6 heures si fièvre "
            "mal tolérée, 3 jours au plus. Sérum physiologique : lavages de nez 4 fois par jour."
        ),
        ages=(0, 15),
    ),
    Scenario(
        specialty="paediatrics",
        subject="Petits boutons rouges sur le ventre",
        description=(
            "Des petits boutons rouges sont apparus ce matin sur le ventre et le dos de mon "
            "enfant. {Il} n'a pas de fièvre et joue normalement."
        ),
        duration="less_than_a_day",
        treatments="aucun",
        question=(
            "Bonjour, les boutons s'effacent-ils quand vous appuyez dessus avec un verre "
            "transparent ? Pouvez-vous envoyer une photo ?"
        ),
        answer="Oui, ils s'effacent sous le verre. Voici une photo.",
        document=Document("eruption-ventre.png", "photo"),
        advice=(
            "D'après la photo, il s'agit d'une éruption virale bénigne. Surveillez la "
            "température ; si les boutons ne s'effacent plus sous le verre, allez aux "
            "urgences sans attendre."
        ),
        report=(
            "Éruption maculo-papuleuse du tronc sans fièvre, s'effaçant à la vitropression "
            "selon les parents, enfant en bon état général. Exanthème viral probable. "
            "Surveillance, consignes de consultation urgente en cas de purpura."
        ),
        prescription=None,
        ages=(1, 12),
    ),
    Scenario(
        specialty="paediatrics",
        subject="Toux la nuit depuis deux semaines",
        description=(
            "Mon enfant tousse surtout la nuit depuis deux semaines, sans fièvre. {Il} a "
            "déjà eu des bronchiolites quand {il} était bébé."
        ),
        duration="1_to_4_weeks",
        treatments="aucun",
        question=(
            "Bonjour, entendez-vous un sifflement quand {il} respire ? La toux {le} "
            "réveille-t-elle ? Avez-vous un animal à la maison ?"
        ),
        answer=(
            "Oui, un petit sifflement parfois, et la toux {le} réveille deux ou trois fois "
            "par nuit. Nous avons un chat depuis un mois. Voici son dernier bilan allergique."
        ),
        document=Document(
            "bilan-allergologique.pdf",
            "pdf",
            "Bilan allergologique",
            (
                "Tests cutanés : acariens positif",
                "Pollens de graminées : négatif",
                "Conclusion : sensibilisation aux acariens",
            ),
        ),
        advice=(
            "Cette toux nocturne avec sifflements évoque un asthme, peut-être favorisé par le "
            "chat. Je prescris un traitement d'essai ; il faudra une consultation en cabinet "
            "avec une mesure du souffle."
        ),
        report=(
            "Toux nocturne sans fièvre depuis 2 semaines avec sifflements, antécédents de "
            "bronchiolites, sensibilisation connue aux acariens, arrivée récente d'un chat. "
            "Suspicion d'asthme. Bronchodilatateur à la demande, consultation présentielle "
            "avec exploration fonctionnelle respiratoire à programmer."
        ),
        prescription=(
            "Salbutamol 100 µg/dose avec chambre d'inhalation : 2 bouffées en cas de toux "
            "ou de gêne respiratoire, jusqu'à 4 fois par jour."
        ),
        ages=(2, 15),
    ),
    # -- psychiatry ----------------------------------------------------------------------
    Scenario(
        specialty="psychiatry",
        subject="Je dors mal depuis plusieurs semaines",
        description=(
            "Je me réveille vers 3 h du matin et n'arrive plus à me rendormir. Je me sens "
            "épuisé{e} et irritable au travail."
        ),
        duration="1_to_4_weeks",
        treatments="aucun",
        question=(
            "Bonjour, depuis quand exactement ? Un événement particulier est-il survenu ? "
            "Avez-vous des idées noires ?"
        ),
        answer=(
            "Depuis un mois environ, après une réorganisation au travail. Pas d'idées "
            "noires. J'ai noté mes nuits, je vous joins l'agenda."
        ),
        document=Document(
            "agenda-sommeil.pdf",
            "pdf",
            "Agenda du sommeil",
            (
                "Lundi : coucher 23 h, réveil 3 h 10, lever 6 h 30",
                "Mardi : coucher 23 h 30, réveil 3 h 40, lever 6 h 30",
                "Mercredi : coucher 22 h 45, réveil 2 h 55, lever 6 h 30",
                "Jeudi : coucher 23 h 15, réveil 4 h 05, lever 6 h 30",
            ),
        ),
        advice=(
            "Merci, c'est très utile. Je vous propose des mesures d'hygiène du sommeil et un "
            "point dans quinze jours ; pas de somnifère pour l'instant."
        ),
        report=(
            "Insomnie de maintien depuis un mois dans un contexte de stress professionnel, "
            "sans idée suicidaire ni épisode dépressif caractérisé. Agenda du sommeil "
            "analysé. Hygiène du sommeil, relaxation, pas de traitement hypnotique. "
            "Réévaluation à 15 jours."
        ),
        prescription=None,
        ages=(18, 80),
    ),
    Scenario(
        specialty="psychiatry",
        subject="Crises d'angoisse dans les transports",
        description=(
            "J'ai eu trois crises d'angoisse ce mois-ci, le cœur qui s'emballe et "
            "l'impression d'étouffer. Mon médecin a écarté un problème cardiaque."
        ),
        duration="1_to_4_weeks",
        treatments="aucun",
        question=(
            "Bonjour, comment se déroulent les crises et combien de temps durent-elles ? "
            "Évitez-vous certaines situations depuis ?"
        ),
        answer=(
            "Une dizaine de minutes, surtout dans les transports. J'évite le métro "
            "maintenant. Voici le courrier de mon médecin."
        ),
        document=Document(
            "courrier-medecin-traitant.pdf",
            "pdf",
            "Courrier du médecin traitant",
            (
                "Électrocardiogramme : rythme sinusal régulier, normal",
                "Bilan thyroïdien : normal",
                "Pas d'argument pour une cause cardiaque",
            ),
        ),
        advice=(
            "Ce que vous décrivez correspond à un trouble panique débutant. Une "
            "psychothérapie comportementale est le traitement de référence ; je vous oriente "
            "et nous referons le point dans un mois."
        ),
        report=(
            "Attaques de panique récurrentes (3 en un mois) avec début d'évitement des "
            "transports ; bilan somatique normal (ECG, TSH). Trouble panique. "
            "Psychoéducation, orientation vers une thérapie cognitivo-comportementale, pas "
            "de traitement médicamenteux d'emblée. Revoir dans un mois."
        ),
        prescription=None,
        ages=(18, 75),
    ),
    Scenario(
        specialty="psychiatry",
        subject="Suivi de mon traitement antidépresseur",
        description=(
            "Je prends un antidépresseur depuis quatre mois, je vais mieux et je voudrais "
            "savoir quand on pourra l'arrêter."
        ),
        duration="no_symptoms",
        treatments="sertraline 50 mg le matin",
        question=(
            "Bonjour, comment sont votre humeur et votre sommeil ces dernières semaines ? "
            "Avez-vous des effets indésirables ?"
        ),
        answer=(
            "Humeur stable, je dors bien, j'ai repris le sport. Un peu de nausées au début, "
            "plus maintenant. Voici mon questionnaire d'auto-évaluation."
        ),
        document=Document(
            "auto-evaluation-humeur.pdf",
            "pdf",
            "Questionnaire d'auto-évaluation",
            (
                "Humeur : 7/10",
                "Sommeil : 8/10",
                "Intérêt pour les activités : 7/10",
                "Anxiété : 3/10",
            ),
        ),
        advice=(
            "Très bonne évolution. On poursuit encore deux mois au moins avant une diminution "
            "progressive ; jamais d'arrêt brutal."
        ),
        report=(
            "Épisode dépressif caractérisé en rémission sous sertraline 50 mg depuis 4 mois, "
            "bonne tolérance. Poursuite à posologie inchangée 2 mois au moins, puis "
            "décroissance progressive à discuter. Ordonnance renouvelée."
        ),
        prescription="Sertraline 50 mg : 1 comprimé le matin pendant 2 mois.",
        ages=(20, 80),
    ),
    # -- gynaecology ---------------------------------------------------------------------
    Scenario(
        specialty="gynaecology",
        subject="Renouvellement de ma pilule",
        description=(
            "J'arrive à la fin de ma plaquette et mon ordonnance a expiré. Je n'ai aucun "
            "effet indésirable."
        ),
        duration="no_symptoms",
        treatments="pilule œstroprogestative",
        question=(
            "Bonjour, fumez-vous ? Quelle était votre dernière tension ? Y a-t-il des "
            "phlébites dans votre famille ?"
        ),
        answer=(
            "Je ne fume pas, ma tension était à 11/7 à la pharmacie le mois dernier, pas de "
            "phlébite connue dans ma famille. Voici ma dernière ordonnance."
        ),
        document=Document(
            "ancienne-ordonnance.pdf",
            "pdf",
            "Ordonnance",
            (
                "Lévonorgestrel 0,10 mg / éthinylestradiol 0,02 mg",
                "1 comprimé par jour, 21 jours sur 28",
                "Qsp 12 mois",
            ),
        ),
        advice=(
            "Tout est en ordre, je renouvelle pour un an. Pensez au frottis de dépistage si "
            "le dernier date de plus de trois ans."
        ),
        report=(
            "Renouvellement d'une contraception œstroprogestative bien tolérée. Non "
            "fumeuse, tension normale, pas d'antécédent thromboembolique personnel ni "
            "familial. Renouvellement pour 12 mois. Rappel du dépistage du cancer du col."
        ),
        prescription=(
            "Lévonorgestrel 0,10 mg / éthinylestradiol 0,02 mg : 1 comprimé par jour, "
            "21 jours sur 28, pendant 12 mois."
        ),
        ages=(16, 48),
        women_only=True,
    ),
    Scenario(
        specialty="gynaecology",
        subject="Règles de plus en plus douloureuses",
        description=(
            "Depuis quelques mois, mes règles sont de plus en plus douloureuses, au point de "
            "manquer des jours de cours ou de travail."
        ),
        duration="more_than_a_month",
        treatments="ibuprofène pendant les règles",
        question=(
            "Bonjour, avez-vous mal aussi en dehors des règles, ou pendant les rapports ? "
            "Qu'est-ce qui vous soulage ?"
        ),
        answer=(
            "Parfois pendant les rapports, oui. L'ibuprofène soulage un peu. J'ai une "
            "échographie faite l'an dernier, la voici."
        ),
        document=Document(
            "echographie-pelvienne.pdf",
            "pdf",
            "Échographie pelvienne",
            (
                "Utérus de taille normale, endomètre fin",
                "Ovaires d'aspect normal",
                "Conclusion : examen sans anomalie",
            ),
        ),
        advice=(
            "Ces douleurs méritent d'être explorées : je vous prescris une échographie "
            "spécialisée et un antalgique en attendant."
        ),
        report=(
            "Dysménorrhée d'aggravation progressive avec dyspareunie, retentissement sur "
            "l'activité. Échographie antérieure normale. Suspicion d'endométriose à explorer "
            "par un échographiste référent ; AINS pendant les règles. Consultation en "
            "cabinet après l'examen."
        ),
        prescription=(
            "Ibuprofène 400 mg : 1 comprimé toutes les 8 heures pendant les règles, au cours "
            "des repas, 3 jours au plus par cycle. Échographie pelvienne à la recherche "
            "d'une endométriose."
        ),
        ages=(14, 45),
        women_only=True,
    ),
    Scenario(
        specialty="gynaecology",
        subject="Question sur un résultat de frottis",
        description=(
            "Mon résultat de frottis parle d'une infection à HPV. Je suis inquiète et je ne "
            "comprends pas la suite."
        ),
        duration="no_symptoms",
        treatments="aucun",
        question="Bonjour, pouvez-vous me transmettre le compte rendu du laboratoire ?",
        answer="Le voici.",
        document=Document(
            "resultat-frottis.pdf",
            "pdf",
            "Dépistage du cancer du col de l'utérus",
            (
                "Recherche d'HPV à haut risque : positive",
                "Examen cytologique : pas de lésion intraépithéliale",
            ),
        ),
        advice=(
            "Rassurez-vous : une infection à HPV est très fréquente et disparaît souvent "
            "seule. La cytologie est normale ; un nouveau test dans un an suffit."
        ),
        report=(
            "Test HPV à haut risque positif avec cytologie normale. Information et "
            "réassurance. Contrôle par test HPV à un an, conformément aux recommandations."
        ),
        prescription=None,
        ages=(25, 65),
        women_only=True,
    ),
    # -- cardiology ----------------------------------------------------------------------
    Scenario(
        specialty="cardiology",
        subject="Palpitations le soir au repos",
        description=(
            "Depuis deux semaines, je sens mon cœur battre vite et irrégulièrement le soir, "
            "quelques minutes. Pas de malaise."
        ),
        duration="1_to_4_weeks",
        treatments="aucun",
        question=(
            "Bonjour, avez-vous eu un malaise, une douleur dans la poitrine, un "
            "essoufflement ? Buvez-vous du café ou de l'alcool le soir ?"
        ),
        answer=(
            "Ni malaise ni douleur. Je bois quatre cafés par jour. Ma montre a enregistré un "
            "tracé pendant un épisode, je vous l'envoie."
        ),
        document=Document(
            "enregistrement-montre.pdf",
            "pdf",
            "Enregistrement ECG (une dérivation)",
            (
                "Durée : 30 secondes",
                "Fréquence moyenne : 112 battements par minute",
                "Classification de l'appareil : non concluant",
            ),
        ),
        advice=(
            "Le tracé ne suffit pas pour conclure. Je vous prescris un Holter de 24 heures et "
            "une prise de sang ; réduisez le café en attendant."
        ),
        report=(
            "Palpitations vespérales au repos depuis 2 semaines, sans syncope ni douleur "
            "thoracique. Tracé de montre connectée non concluant. Holter ECG des 24 heures, "
            "bilan biologique (TSH, ionogramme). Réduction de la caféine. Consultation en "
            "cabinet avec les résultats."
        ),
        prescription=(
            "Holter ECG des 24 heures. Biologie : TSH, ionogramme sanguin, numération "
            "formule sanguine."
        ),
        ages=(30, 85),
    ),
    Scenario(
        specialty="cardiology",
        subject="Tension trouvée élevée à la pharmacie",
        description=(
            "Le pharmacien a mesuré ma tension à 16/9, deux fois. Je n'ai aucun symptôme."
        ),
        duration="no_symptoms",
        treatments="aucun",
        question=(
            "Bonjour, pouvez-vous faire trois mesures le matin et trois le soir pendant trois "
            "jours, et m'envoyer les résultats ?"
        ),
        answer="Voici le relevé de mes mesures sur trois jours.",
        document=Document(
            "automesure-tension.pdf",
            "pdf",
            "Automesure tensionnelle sur 3 jours",
            (
                "Jour 1 : matin 151/94, soir 146/90 mmHg",
                "Jour 2 : matin 149/93, soir 144/91 mmHg",
                "Jour 3 : matin 152/95, soir 147/89 mmHg",
            ),
        ),
        advice=(
            "La moyenne est de 148/92 : l'hypertension est confirmée. Nous commençons un "
            "traitement, avec une prise de sang et un électrocardiogramme."
        ),
        report=(
            "Hypertension artérielle confirmée en automesure (moyenne 148/92 mmHg sur 3 "
            "jours), asymptomatique. Instauration d'un traitement, bilan initial "
            "(créatinine, ionogramme, glycémie, bilan lipidique, ECG), mesures "
            "hygiéno-diététiques. Réévaluation à un mois."
        ),
        prescription=(
            "Périndopril 4 mg : 1 comprimé le matin pendant 1 mois. Biologie à jeun : "
            "créatinine, ionogramme, glycémie, bilan lipidique. Électrocardiogramme."
        ),
        ages=(40, 85),
    ),
    Scenario(
        specialty="cardiology",
        subject="Essoufflé{e} en montant un étage",
        description=(
            "Depuis un mois, je m'essouffle en montant un étage alors que je marchais "
            "facilement avant. Mes chevilles gonflent le soir."
        ),
        duration="1_to_4_weeks",
        treatments="aucun",
        question=(
            "Bonjour, êtes-vous aussi essoufflé{e} allongé{e}, la nuit ? Avez-vous pris du "
            "poids rapidement ?"
        ),
        answer=(
            "Je dors avec deux oreillers depuis peu et j'ai pris trois kilos en deux "
            "semaines. Voici ma dernière prise de sang."
        ),
        document=Document(
            "bilan-sanguin.pdf",
            "pdf",
            "Bilan sanguin",
            (
                "Hémoglobine : 13,1 g/dL",
                "Créatinine : 92 µmol/L",
                "Sodium : 138 mmol/L ; potassium : 4,2 mmol/L",
            ),
        ),
        advice=(
            "Ces signes peuvent venir du cœur : il faut une échographie cardiaque rapidement. "
            "Si l'essoufflement s'aggrave ou survient au repos, appelez le 15."
        ),
        report=(
            "Dyspnée d'effort récente, orthopnée débutante, prise de poids de 3 kg et "
            "œdèmes des chevilles. Suspicion d'insuffisance cardiaque : échocardiographie et "
            "NT-proBNP rapidement, consultation en cabinet sous 7 jours. Consignes d'appel "
            "du 15 en cas d'aggravation."
        ),
        prescription=(
            "Dosage du NT-proBNP, créatinine, ionogramme. Échocardiographie transthoracique "
            "dans la semaine."
        ),
        ages=(50, 95),
    ),
)
