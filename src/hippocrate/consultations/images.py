"""Photos re-encoded without what travels with them: the pixels, upright, and nothing
else.

A phone photo says where and when it was taken (EXIF, GPS position included), with what
device, and sometimes who edited it (XMP, Photoshop blocks, comments); a PNG carries
text chunks any tool may have written. ``without_metadata`` decodes the image, applies
the EXIF orientation to the pixels (so the cleaned photo shows the same way up without
an orientation tag), converts an embedded ICC colour profile to sRGB (so colours stay
right once the profile, which names its maker and device, is dropped), copies the
pixels into a new image that carries no metadata at all, and encodes that.

Guaranteed: the output holds no EXIF, GPS, XMP, ICC profile, comment, Photoshop or
PNG text chunk, and a single frame (the first one, for animated PNGs and multi-picture
JPEGs). Kept: the pixels, the mode, and transparency. Not guaranteed: the pixels
themselves (a face, a tattoo, a street sign) may still identify a person, and a JPEG is
re-compressed, so it is not byte-for-byte what was sent.
"""

from __future__ import annotations

import io
import struct
import warnings

from PIL import ExifTags, Image, ImageCms

JPEG_QUALITY = 90  # visually lossless for photos; below the original's size for most
_SRGB = ImageCms.createProfile("sRGB")
# EXIF orientation -> the transposition that shows the pixels upright (as
# ImageOps.exif_transpose does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def without_metadata(image: Image.Image, image_format: str) -> bytes:
    """``image`` (decoded, ``JPEG`` or ``PNG``) encoded again in its format, upright,
    in sRGB, with no metadata."""
    transparency = image.info.get("transparency")
    upright = _upright(image)
    pixels = _in_srgb(upright, image.info.get("icc_profile"))
    if image_format == "JPEG" and pixels.mode not in ("L", "RGB"):
        pixels = pixels.convert("RGB")
    # A new image from the bytes of the pixels: nothing of the original's info,
    # EXIF or chunks can follow it.
    clean = Image.frombytes(pixels.mode, pixels.size, pixels.tobytes())
    if pixels.mode in ("P", "PA") and pixels.palette is not None:
        clean.putpalette(pixels.getpalette(pixels.palette.mode) or [], pixels.palette.mode)
    out = io.BytesIO()
    if image_format == "JPEG":
        clean.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        options = {} if transparency is None else {"transparency": transparency}
        clean.save(out, format="PNG", **options)
    return out.getvalue()


def _upright(image: Image.Image) -> Image.Image:
    """The pixels turned as the EXIF orientation says. Not ImageOps.exif_transpose: it
    writes the EXIF out again, which fails on a malformed block that is about to be
    dropped anyway; a block that cannot be read gives no orientation."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data", etc.
            orientation = image.getexif().get(ExifTags.Base.Orientation)
    except (OSError, ValueError, TypeError, KeyError, IndexError, SyntaxError, struct.error):
        orientation = None
    method = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    return image if method is None else image.transpose(method)


def _in_srgb(image: Image.Image, icc_profile: object) -> Image.Image:
    """The pixels converted from their embedded profile to sRGB; unchanged when there
    is none, or when the profile cannot be used (it is dropped all the same)."""
    if not isinstance(icc_profile, bytes) or not icc_profile:
        return image
    output_mode = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB"}.get(image.mode)
    if output_mode is None:
        return image  # grey or palette images: the profile is dropped, the pixels kept
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=output_mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image
    return converted if converted is not None else image
