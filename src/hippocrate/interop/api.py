"""HTTP routes of records that travel: the patient's export as a FHIR Bundle."""

from __future__ import annotations

import json

from fastapi import Response

from hippocrate.api.deps import DB, CurrentPrincipal, Now, authenticated_router
from hippocrate.consultations.api import Blobs
from hippocrate.interop import fhir
from hippocrate.patients import service

router = authenticated_router(tags=["interop"])


@router.get("/patients/me/export/fhir")
def export_own_data_as_fhir(
    db: DB, principal: CurrentPrincipal, now: Now, blobs: Blobs
) -> Response:
    """Everything held about the caller as a FHIR R4 Bundle (type collection) to
    download: the same data as the JSON export, in the shape other health systems read."""
    export = service.export_own_data(session=db, blobs=blobs, principal=principal, now=now)
    bundle = fhir.bundle_of(export)
    return Response(
        json.dumps(bundle, ensure_ascii=False, indent=1),
        media_type=fhir.MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="hippocrate-export.fhir.json"'},
    )
