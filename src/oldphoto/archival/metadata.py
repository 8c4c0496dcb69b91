"""EXIF, IPTC-IIM and XMP of masters and derivatives, through libexiv2 (the ``exiv2`` wheel).

:func:`read_carried` reads a master's metadata from its bytes in memory (the file itself is only
ever read by Python, ``open(path, "rb")``) and keeps the fields a derivative carries over as a
:class:`Carried`; :func:`write_metadata` writes a :class:`Carried` (the master's fields plus what
is true of the derivative) into an encoded PNG, TIFF or JPEG, in memory, and returns the new
bytes.  libexiv2 puts every block where the format has it:

======  =============================  ================================  ==========================
format  EXIF                           IPTC-IIM                          XMP
======  =============================  ================================  ==========================
PNG     ``eXIf`` chunk                 ``zTXt`` "Raw profile type iptc"  ``iTXt`` XML:com.adobe.xmp
TIFF    IFD0 tags + Exif/GPS sub-IFDs  tag 33723                         tag 700
JPEG    APP1 ``Exif``                  APP13 Photoshop IRB 0x0404        APP1 XMP
======  =============================  ================================  ==========================

XMP structures (``xmpMM:History``, ``xmpMM:DerivedFrom``) are kept as libexiv2 holds them,
flattened keys such as ``Xmp.xmpMM.History[2]/stEvt:action``; :func:`set_xmp` writes plain,
struct and array-of-struct values from Python dicts and lists.  Why libexiv2 and not exiftool,
with the measurements: ``docs/archival.md`` (Formats and libraries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from oldphoto.errors import BadImageError

STRUCTURAL_KEYS = frozenset({
    # The master's pixel layout, its embedded blocks and pointers, not the photo: the
    # derivative's encoder (or libexiv2) writes its own, or they are no longer true.
    "Exif.Image.NewSubfileType", "Exif.Image.SubfileType", "Exif.Image.ImageWidth",
    "Exif.Image.ImageLength", "Exif.Image.BitsPerSample", "Exif.Image.Compression",
    "Exif.Image.PhotometricInterpretation", "Exif.Image.Threshholding",
    "Exif.Image.CellWidth", "Exif.Image.CellLength", "Exif.Image.FillOrder",
    "Exif.Image.StripOffsets", "Exif.Image.SamplesPerPixel", "Exif.Image.RowsPerStrip",
    "Exif.Image.StripByteCounts", "Exif.Image.MinSampleValue", "Exif.Image.MaxSampleValue",
    "Exif.Image.PlanarConfiguration", "Exif.Image.Predictor", "Exif.Image.ColorMap",
    "Exif.Image.TileWidth", "Exif.Image.TileLength", "Exif.Image.TileOffsets",
    "Exif.Image.TileByteCounts", "Exif.Image.SubIFDs", "Exif.Image.ExtraSamples",
    "Exif.Image.SampleFormat", "Exif.Image.SMinSampleValue", "Exif.Image.SMaxSampleValue",
    "Exif.Image.JPEGTables", "Exif.Image.JPEGInterchangeFormat",
    "Exif.Image.JPEGInterchangeFormatLength", "Exif.Image.YCbCrCoefficients",
    "Exif.Image.YCbCrSubSampling", "Exif.Image.YCbCrPositioning",
    "Exif.Image.ReferenceBlackWhite", "Exif.Image.XMLPacket", "Exif.Image.IPTCNAA",
    "Exif.Image.ImageResources", "Exif.Image.InterColorProfile", "Exif.Image.ExifTag",
    "Exif.Image.GPSTag", "Exif.Photo.InteroperabilityTag", "Exif.Photo.MakerNote",
    "Exif.Photo.ComponentsConfiguration", "Exif.Photo.CompressedBitsPerPixel",
    # Set for the derivative (write_derivative): orientation applied, its own resolution, size.
    "Exif.Image.Orientation", "Exif.Image.XResolution", "Exif.Image.YResolution",
    "Exif.Image.ResolutionUnit", "Exif.Image.Software", "Exif.Photo.PixelXDimension",
    "Exif.Photo.PixelYDimension",
})
"""EXIF keys never copied from a master."""

CARRIED_EXIF_GROUPS = ("Exif.Image.", "Exif.Photo.", "Exif.GPSInfo.", "Exif.Iop.")
"""EXIF groups a derivative carries (IFD0, Exif, GPS, Interoperability): not the thumbnail
(``Exif.Thumbnail``: the master's unrestored pixels) nor maker notes."""

OVERRIDDEN_XMP = ("Xmp.tiff.Orientation", "Xmp.tiff.XResolution", "Xmp.tiff.YResolution",
                  "Xmp.tiff.ResolutionUnit", "Xmp.tiff.ImageWidth", "Xmp.tiff.ImageLength",
                  "Xmp.tiff.BitsPerSample", "Xmp.tiff.Compression",
                  "Xmp.tiff.PhotometricInterpretation", "Xmp.tiff.SamplesPerPixel",
                  "Xmp.exif.PixelXDimension", "Xmp.exif.PixelYDimension", "Xmp.x.XMPToolkit")
"""XMP properties of a master that describe its pixel layout; not carried as they were."""


def _exiv2():
    import exiv2

    if not getattr(_exiv2, "ready", False):
        exiv2.XmpParser.initialize()
        exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.error)  # warnings: not for the user's log
        _exiv2.ready = True
    return exiv2


@dataclass
class Carried:
    """The metadata a derivative carries: libexiv2 containers, owned by this object.

    Attributes:
        exif, iptc, xmp: ``exiv2.ExifData``, ``exiv2.IptcData``, ``exiv2.XmpData``.
        xmp_packet: the master's XMP packet as stored (UTF-8), or None.
    """

    exif: Any
    iptc: Any
    xmp: Any
    xmp_packet: bytes | None = field(default=None, repr=False)

    def copy(self) -> "Carried":
        """A deep copy whose containers can be changed without touching this one."""
        exiv2 = _exiv2()
        return Carried(_copied(self.exif, exiv2.ExifData()), _copied(self.iptc, exiv2.IptcData()),
                       _copied(self.xmp, exiv2.XmpData()), self.xmp_packet)

    def texts(self) -> dict[str, str]:
        """Every carried field as ``key -> text`` (libexiv2's keys and value strings; a repeated
        IPTC dataset joins its values with ``"; "``)."""
        found: dict[str, str] = {}
        for container in (self.exif, self.iptc, self.xmp):
            for datum in container:
                key, text = datum.key(), datum.toString()
                found[key] = f"{found[key]}; {text}" if key in found else text
        return found


def _copied(source, target):
    for datum in source:
        target.add(datum)
    return target


def empty() -> Carried:
    """No metadata: what a derivative without a master carries before its own fields."""
    exiv2 = _exiv2()
    return Carried(exiv2.ExifData(), exiv2.IptcData(), exiv2.XmpData())


def _reason(err: Exception) -> str:
    """libexiv2's message for an ``Exiv2Error`` (its text, without the error code)."""
    return str(getattr(err, "message", "") or err).strip().rstrip(".")


def _open(data: bytes, path: str | Path | None, what: str):
    exiv2 = _exiv2()
    try:
        image = exiv2.ImageFactory.open(data)
        image.readMetadata()
    except exiv2.Exiv2Error as err:
        raise BadImageError(path, f"{what}: {_reason(err)}") from None
    return image


def read_carried(data: bytes, path: str | Path | None = None) -> Carried:
    """The fields of an image's bytes ``data`` that a derivative carries (``path`` names the
    file in errors): EXIF of :data:`CARRIED_EXIF_GROUPS` without :data:`STRUCTURAL_KEYS`, every
    IPTC dataset, every XMP property but :data:`OVERRIDDEN_XMP`.

    A format libexiv2 does not handle (GIF) carries nothing: it has no EXIF or IPTC block.

    Raises:
        BadImageError: libexiv2 cannot read the file's metadata.
    """
    exiv2 = _exiv2()
    try:
        image = exiv2.ImageFactory.open(data)
    except exiv2.Exiv2Error as err:
        if err.code == exiv2.ErrorCode.kerMemoryContainsUnknownImageType:
            return empty()
        raise BadImageError(path, f"unreadable metadata: {_reason(err)}") from None
    try:
        image.readMetadata()
    except exiv2.Exiv2Error as err:
        raise BadImageError(path, f"unreadable metadata: {_reason(err)}") from None
    carried = empty()
    for datum in image.exifData():
        key = datum.key()
        if key.startswith(CARRIED_EXIF_GROUPS) and key not in STRUCTURAL_KEYS:
            carried.exif.add(datum)
    _copied(image.iptcData(), carried.iptc)
    for datum in image.xmpData():
        if datum.key() not in OVERRIDDEN_XMP:
            carried.xmp.add(datum)
    packet = image.xmpPacket()
    carried.xmp_packet = packet.encode("utf-8") if packet else None
    return carried


# --- XMP values ---------------------------------------------------------------------------------


def xmp_keys_under(xmp, prefix: str) -> list[str]:
    """The keys of property ``prefix`` (e.g. ``Xmp.xmpMM.History``) and of all its parts."""
    return [d.key() for d in xmp
            if d.key() == prefix or d.key().startswith((prefix + "/", prefix + "["))]


def remove_xmp(xmp, prefix: str) -> None:
    """Remove property ``prefix`` with its struct fields and array items."""
    exiv2 = _exiv2()
    for key in xmp_keys_under(xmp, prefix):
        position = xmp.findKey(exiv2.XmpKey(key))
        if position != xmp.end():
            xmp.erase(position)


def xmp_array_length(xmp, prefix: str) -> int:
    """How many items the XMP array ``prefix`` has (0 when it is absent)."""
    items = set()
    for key in xmp_keys_under(xmp, prefix):
        rest = key[len(prefix):]
        if rest.startswith("["):
            items.add(int(rest[1:rest.index("]")]))
    return max(items, default=0)


def _container(xmp, key: str, kind: str) -> None:
    exiv2 = _exiv2()
    if any(d.key() == key for d in xmp):
        return
    value = exiv2.XmpTextValue()
    if kind == "struct":
        value.setXmpStruct()
    else:
        value.setXmpArrayType(exiv2.XmpValue.XmpArrayType.xaSeq)
    xmp.add(exiv2.XmpKey(key), value)


def set_xmp(xmp, key: str, value: str | Mapping[str, str] | list[Mapping[str, str]],
            *, append: bool = False) -> None:
    """Set XMP property ``key`` (``Xmp.<prefix>.<name>``) in the container ``xmp``.

    ``value`` is a text, a struct (``{"stRef:documentID": ..., ...}``, field names with their
    namespace prefix) or a list of structs (an ordered array, ``rdf:Seq``).  The property is
    replaced, except a list with ``append=True``, whose structs are added after the existing
    items (``xmpMM:History`` keeps the master's events).
    """
    if isinstance(value, str):
        remove_xmp(xmp, key)
        xmp[key] = value
        return
    if isinstance(value, Mapping):
        remove_xmp(xmp, key)
        _container(xmp, key, "struct")
        for name, text in value.items():
            xmp[f"{key}/{name}"] = str(text)
        return
    if not append:
        remove_xmp(xmp, key)
    _container(xmp, key, "seq")
    start = xmp_array_length(xmp, key)
    for offset, item in enumerate(value, start=1):
        item_key = f"{key}[{start + offset}]"
        _container(xmp, item_key, "struct")
        for name, text in item.items():
            xmp[f"{item_key}/{name}"] = str(text)


# --- EXIF values ----------------------------------------------------------------------------------


def set_exif(exif, key: str, value: str | int | bytes | tuple[int, int] | None) -> None:
    """Set (or, with None, remove) one EXIF tag: an ``int`` as SHORT (LONG above 65535), a
    ``(numerator, denominator)`` pair as RATIONAL, ``bytes`` as UNDEFINED, text as ASCII."""
    exiv2 = _exiv2()
    position = exif.findKey(exiv2.ExifKey(key))
    while position != exif.end():
        exif.erase(position)
        position = exif.findKey(exiv2.ExifKey(key))
    if value is None:
        return
    if isinstance(value, bytes):
        data = exiv2.DataValue(exiv2.TypeId.undefined)
        data.read(" ".join(str(b) for b in value))
        exif[key] = data
    elif isinstance(value, tuple):
        exif[key] = exiv2.URationalValue([tuple(int(v) for v in value)])
    elif isinstance(value, int):
        exif[key] = exiv2.UShortValue(value) if value < 65536 else exiv2.ULongValue(value)
    else:
        exif[key] = exiv2.AsciiValue(str(value))


# --- writing --------------------------------------------------------------------------------------


def write_metadata(encoded: bytes, carried: Carried, *, path: str | Path | None = None) -> bytes:
    """``encoded`` (a PNG, TIFF or JPEG) with the EXIF, IPTC and XMP of ``carried``.

    Everything else in the file stays as the encoder wrote it: pixels, ICC profile (libexiv2
    reads and rewrites it unchanged), resolution, PNG text chunks.  Works in memory.

    Raises:
        BadImageError: libexiv2 refuses (``path`` names the derivative).
    """
    exiv2 = _exiv2()
    image = _open(encoded, path, "metadata could not be written")
    try:
        image.setExifData(carried.exif)
        image.setIptcData(carried.iptc)
        image.setXmpData(carried.xmp)
        image.writeMetadata()
        io = image.io()
        with io.mmap() as view:
            return bytes(view)
    except exiv2.Exiv2Error as err:
        raise BadImageError(path, f"metadata could not be written: {_reason(err)}") from None
