"""What an image instance must have before it is acknowledged.

"Acknowledged means stored, retrievable byte-identical and decodable": a header-only
mammogram, a fragment table that cannot be split into the declared frames, or a JPEG-LS
stream declaring 8192 x 8192 inside a 256 x 256 image would all be stored and then fail
(or exhaust memory) on the first ``/rendered`` request. So, before anything is stored:

* an image SOP class has Pixel Data, and its modality is one its IOD allows;
* the transfer syntax agrees with the encoding (native versus encapsulated);
* encapsulated data has fragments that can be assigned to Number of Frames frames (one
  per frame, a single frame, or a Basic/Extended Offset Table pointing at item starts);
* every frame's codec stream header (JPEG SOF, JPEG-LS SOF55, JPEG 2000 SIZ, RLE header)
  matches the transfer syntax and Rows, Columns, Samples per Pixel and Bits Allocated;
* one decoded frame is at most ``max_frame_bytes`` (and the whole instance at most
  ``max_instance_bytes``, checked in :mod:`omipacs.ingest.validate`);
* and then every compressed frame actually decodes (one frame at a time, with the same
  decoders and decode slots as retrieval): a stream whose headers are right but whose
  data is corrupt would otherwise be acknowledged and fail on first view.
"""

from __future__ import annotations

from pydicom import uid as pyuid

from omipacs.dicom import codestream
from omipacs.dicom.frames import frame_table, number_of_frames
from omipacs.dicom.parse import ParsedFile
from omipacs.dicom.pixels import decode_frame
from omipacs.dicom.uids import BREAST_TOMOSYNTHESIS, MG_FOR_PRESENTATION, MG_FOR_PROCESSING
from omipacs.errors import InvalidAttributes, NotAcceptable

#: SOP classes without pixel data (everything else the archive stores is an image).
NON_IMAGE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.11.1",  # Grayscale Softcopy Presentation State
        "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
        "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
        "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
        "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
        "1.2.840.10008.5.1.4.1.1.88.50",  # Mammography CAD SR
        "1.2.840.10008.5.1.4.1.1.88.59",  # Key Object Selection Document
    }
)

_MG = frozenset({"MG"})
#: Modality (0008,0060) values each IOD's series module allows (PS3.3 C.8.11.7.1.1 for MG,
#: C.8.11.1.1.1 for DX, C.8.1 CR, C.8.13 MR, C.8.5 US, C.11.1 PR, C.8.20 SEG,
#: C.17.1 SR, C.17.6 KO). Secondary Capture may carry any modality.
MODALITIES: dict[str, frozenset[str]] = {
    MG_FOR_PRESENTATION: _MG,
    MG_FOR_PROCESSING: _MG,
    BREAST_TOMOSYNTHESIS: _MG,
    "1.2.840.10008.5.1.4.1.1.13.1.4": _MG,
    "1.2.840.10008.5.1.4.1.1.13.1.5": _MG,
    "1.2.840.10008.5.1.4.1.1.1": frozenset({"CR"}),
    "1.2.840.10008.5.1.4.1.1.1.1": frozenset({"DX", "MG", "IO", "PX"}),
    "1.2.840.10008.5.1.4.1.1.1.1.1": frozenset({"DX", "MG", "IO", "PX"}),
    "1.2.840.10008.5.1.4.1.1.4": frozenset({"MR"}),
    "1.2.840.10008.5.1.4.1.1.4.1": frozenset({"MR"}),
    "1.2.840.10008.5.1.4.1.1.6.1": frozenset({"US"}),
    "1.2.840.10008.5.1.4.1.1.3.1": frozenset({"US"}),
    "1.2.840.10008.5.1.4.1.1.11.1": frozenset({"PR"}),
    "1.2.840.10008.5.1.4.1.1.66.4": frozenset({"SEG"}),
    "1.2.840.10008.5.1.4.1.1.88.11": frozenset({"SR"}),
    "1.2.840.10008.5.1.4.1.1.88.22": frozenset({"SR"}),
    "1.2.840.10008.5.1.4.1.1.88.33": frozenset({"SR"}),
    "1.2.840.10008.5.1.4.1.1.88.34": frozenset({"SR"}),
    "1.2.840.10008.5.1.4.1.1.88.50": frozenset({"SR"}),
    "1.2.840.10008.5.1.4.1.1.88.59": frozenset({"KO"}),
}


def check_modality(parsed: ParsedFile, sop_class: str) -> None:
    """The Modality must be one the SOP class's IOD allows."""
    allowed = MODALITIES.get(sop_class)
    if allowed is None:
        return
    modality = str(parsed.dataset.get("Modality", "") or "").strip()
    if modality not in allowed:
        raise InvalidAttributes(
            f"Modality {modality or '(missing)'} contradicts the SOP class "
            f"(expected {' or '.join(sorted(allowed))})"
        )


def check_image(parsed: ParsedFile, sop_class: str, max_frame_bytes: int) -> None:
    """Refuse an image instance that could not be decoded as declared (module docstring)."""
    if sop_class in NON_IMAGE_CLASSES:
        return
    pixel = parsed.pixel
    if pixel is None or pixel.tag != 0x7FE00010:
        raise InvalidAttributes("an image SOP class without Pixel Data (7FE0,0010)")
    ts = parsed.transfer_syntax
    encapsulated_syntax = codestream.is_encapsulated_syntax(ts)
    if pixel.encapsulated != encapsulated_syntax:
        raise InvalidAttributes(
            "the transfer syntax contradicts the pixel data encoding "
            + ("(native data under a compressed syntax)" if encapsulated_syntax else "")
        )
    ds = parsed.dataset
    rows, cols = int(ds.Rows), int(ds.Columns)
    spp = int(ds.get("SamplesPerPixel") or 1)
    bits = int(ds.BitsAllocated)
    frame_bytes = (rows * cols * spp * bits + 7) // 8
    if frame_bytes > max_frame_bytes:
        raise InvalidAttributes(
            f"one frame decodes to {frame_bytes} bytes, over this archive's "
            f"{max_frame_bytes}-byte limit per frame"
        )
    if pixel.encapsulated:
        _check_encapsulated(parsed, rows, cols, spp, bits)


def _check_encapsulated(parsed: ParsedFile, rows: int, cols: int, spp: int, bits: int) -> None:
    pixel = parsed.pixel
    assert pixel is not None
    ds = parsed.dataset
    frames = number_of_frames(ds)
    fragments = pixel.fragments
    if not fragments or any(f.length == 0 for f in fragments):
        raise InvalidAttributes("encapsulated pixel data has no (or an empty) fragment")
    if len(fragments) < frames:
        raise InvalidAttributes(
            f"{len(fragments)} fragments cannot hold NumberOfFrames {frames} frames"
        )
    bot = pixel.basic_offsets
    if bot:
        item_starts = {f.offset - 8 - pixel.first_fragment_item_offset for f in fragments}
        if len(bot) != frames or bot[0] != 0 or not set(bot) <= item_starts:
            raise InvalidAttributes(
                "the Basic Offset Table does not point at one fragment per frame"
            )
        if list(bot) != sorted(bot):
            raise InvalidAttributes("the Basic Offset Table is not in ascending order")
    table = frame_table(ds, pixel)
    if table is None or len(table) != frames:
        raise InvalidAttributes(
            f"the fragments cannot be assigned to NumberOfFrames {frames} frames "
            "(no usable offset table)"
        )
    ts = parsed.transfer_syntax
    rle_segments = spp * ((bits + 7) // 8)
    with open(parsed.path, "rb") as fp:
        for ranges in table:
            length = sum(n for _, n in ranges)
            head = b""
            for offset, n in ranges:
                want = codestream.HEADER_PROBE_BYTES - len(head)
                if want <= 0:
                    break
                fp.seek(offset)
                head += fp.read(min(n, want))
            header = codestream.read_header(ts, head, length, rle_segments)
            if header is not None and ts not in codestream.RLE_SYNTAXES:
                _match(header, rows, cols, spp, bits, ts)
    # Headers agree; now every frame must decode, one at a time (bounded by the frame
    # limit above and the process's decode slots), or a corrupt stream would be stored.
    for number, ranges in enumerate(table, start=1):
        _decodes(parsed, ranges, number, rows, cols)


def _decodes(
    parsed: ParsedFile, ranges: list[tuple[int, int]], number: int, rows: int, cols: int
) -> None:
    frame = bytearray()
    with open(parsed.path, "rb") as fp:
        for offset, n in ranges:
            fp.seek(offset)
            frame += fp.read(n)
    try:
        arr = decode_frame(parsed.dataset, bytes(frame), parsed.transfer_syntax)
    except NotAcceptable:
        raise InvalidAttributes(f"compressed frame {number} does not decode") from None
    if arr.shape[:2] != (rows, cols):
        raise InvalidAttributes(f"compressed frame {number} decodes to another size")


def _match(
    header: codestream.StreamHeader, rows: int, cols: int, spp: int, bits: int, ts: str
) -> None:
    if (header.rows, header.columns) != (rows, cols):
        raise InvalidAttributes(
            f"a compressed frame declares {header.columns} x {header.rows} pixels; "
            f"the header says {cols} x {rows}"
        )
    if header.components != spp:
        raise InvalidAttributes(
            f"a compressed frame has {header.components} components; "
            f"SamplesPerPixel is {spp}"
        )
    if not 1 <= header.precision <= bits or (
        ts == pyuid.JPEGBaseline8Bit and header.precision != 8
    ):
        raise InvalidAttributes(
            f"a compressed frame has {header.precision}-bit samples; BitsAllocated is {bits}"
        )
