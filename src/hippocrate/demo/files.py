"""The demo's files (photos, PDF documents): made by ``hippocrate.guard.documents``."""

from hippocrate.guard.documents import (
    jpeg_bytes,
    pdf_bytes,
    pdf_document,
    png_bytes,
    skin_photo,
)

__all__ = ["jpeg_bytes", "pdf_bytes", "pdf_document", "png_bytes", "skin_photo"]
