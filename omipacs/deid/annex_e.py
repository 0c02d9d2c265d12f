"""PS3.15 Table E.1-1, the Application Level Confidentiality Profile attributes, as data.

Each row gives the tag, the Basic Profile action code and, where the standard gives one,
the action for each option that omipacs may apply (named by its CID 7050 code):

* ``113105`` Clean Descriptors,
* ``113107`` Retain Longitudinal Temporal Information with Modified Dates,
* ``113108`` Retain Patient Characteristics,
* ``113109`` Retain Device Identity.

Option columns that omipacs never applies (Retain UIDs, Retain Full Dates, Retain
Institution Identity, Clean Structured Content, Clean Graphics, Retain Safe Private) are
not transcribed. Rows with repeating or wildcard tags (curves 50xx, overlays 60xx, private
groups) are handled as group rules in :mod:`omipacs.deid.profile`, not here.

The action codes are those of PS3.15 E.1.1: D (dummy), Z (zero length or dummy), X
(remove), K (keep; clean sequences), C (clean), U (consistent replacement UID) and the
combined codes ``X/Z``, ``X/D``, ``X/Z/D``, ``Z/D`` and ``X/Z/U*``. How each is turned into
an operation is decided in :mod:`omipacs.deid.profile`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from pydicom.tag import BaseTag, Tag

BASIC_CODES: Final = frozenset(
    {"D", "Z", "X", "K", "C", "U", "X/Z", "X/D", "X/Z/D", "Z/D", "X/Z/U*"}
)
"""Action codes that appear in the Basic Profile column."""

OPTION_COLUMNS: Final = ("113105", "113107", "113108", "113109")
"""CID 7050 codes of the option columns transcribed below."""

# tag        basic    option:action ...
_TABLE: Final = """
0000,1000  X
0000,1001  U
0002,0003  U
0004,1511  U
0008,0014  U
0008,0015  X       113107:C
0008,0018  U
0008,0020  Z       113107:C
0008,0021  X/D     113107:C
0008,0022  X/Z     113107:C
0008,0023  Z/D     113107:C
0008,0024  X       113107:C
0008,0025  X       113107:C
0008,002A  X/Z/D   113107:C
0008,0030  Z       113107:C
0008,0031  X/D     113107:C
0008,0032  X/Z     113107:C
0008,0033  Z/D     113107:C
0008,0034  X       113107:C
0008,0035  X       113107:C
0008,0050  Z
0008,0058  U
0008,0080  X/Z/D
0008,0081  X
0008,0082  X/Z/D
0008,0090  Z
0008,0092  X
0008,0094  X
0008,0096  X
0008,009C  Z
0008,009D  X
0008,0201  X       113107:C
0008,1010  X/Z/D   113109:K
0008,1030  X       113105:C
0008,103E  X       113105:C
0008,1040  X
0008,1041  X
0008,1048  X
0008,1049  X
0008,1050  X
0008,1052  X
0008,1060  X
0008,1062  X
0008,1070  X/Z/D
0008,1072  X/D
0008,1080  X       113105:C
0008,1084  X       113105:C
0008,1110  X/Z
0008,1111  X/Z/D
0008,1120  X
0008,1140  X/Z/U*
0008,1155  U
0008,1195  U
0008,2111  X       113105:C
0008,2112  X/Z/U*
0008,3010  U
0008,4000  X       113105:C
0010,0010  Z
0010,0020  Z
0010,0021  X
0010,0030  Z
0010,0032  X
0010,0040  Z       113108:K
0010,0050  X
0010,0101  X
0010,0102  X
0010,1000  X
0010,1001  X
0010,1002  X
0010,1005  X
0010,1010  X       113108:K
0010,1020  X       113108:K
0010,1030  X       113108:K
0010,1040  X
0010,1050  X
0010,1060  X
0010,1080  X
0010,1081  X
0010,1090  X
0010,1100  X
0010,2000  X       113105:C
0010,2110  X       113105:C 113108:C
0010,2150  X
0010,2152  X
0010,2154  X
0010,2155  X
0010,2160  X       113108:K
0010,2180  X       113105:C
0010,21A0  X       113108:K
0010,21B0  X       113105:C
0010,21C0  X       113108:K
0010,21D0  X       113107:C
0010,21F0  X
0010,2203  X/Z     113108:K
0010,2297  X
0010,2299  X
0010,4000  X       113105:C
0012,0010  D
0012,0020  D
0012,0021  Z
0012,0030  Z
0012,0031  Z
0012,0040  D
0012,0042  D
0012,0050  Z
0012,0051  X       113105:C
0012,0060  Z
0012,0071  X
0012,0072  X       113105:C
0012,0081  D
0012,0082  X
0016,002B  X       113105:C
0016,004B  X       113105:C
0016,004D  X
0016,004E  X       113109:K
0016,004F  X       113109:K
0016,0050  X       113109:K
0016,0051  X       113109:K
0016,0070  X
0016,0071  X
0016,0072  X
0016,0073  X
0016,0074  X
0016,0075  X
0016,0076  X
0016,0077  X
0016,0078  X
0016,0079  X
0016,007A  X
0016,007B  X
0016,007C  X
0016,007D  X
0016,007E  X
0016,007F  X
0016,0080  X
0016,0081  X
0016,0082  X
0016,0083  X
0016,0084  X
0016,0085  X
0016,0086  X
0016,0087  X
0016,0088  X
0016,0089  X
0016,008A  X
0016,008B  X
0016,008C  X
0016,008D  X       113107:C
0016,008E  X
0018,0010  Z/D     113105:C
0018,1000  X/Z/D   113109:K
0018,1002  U       113109:K
0018,1004  X       113109:K
0018,1005  X       113109:K
0018,1007  X       113109:K
0018,1008  X       113109:K
0018,1009  X       113109:K
0018,100A  X       113109:K
0018,100B  U       113109:K
0018,1030  X/D     113105:C
0018,11BB  D       113105:C
0018,1400  X/D     113105:C
0018,2042  U
0018,4000  X       113105:C
0018,5011  X       113109:K
0018,700A  X/D     113109:K
0018,9185  X       113105:C
0018,9367  D       113109:K
0018,9369  D       113107:C
0018,936A  D       113107:C
0018,9371  D       113109:K
0018,9373  X       113109:K
0018,937B  X       113105:C
0018,937F  X       113105:C
0018,9424  X       113105:C
0018,9516  X/D     113107:C
0018,9517  X/D     113107:C
0018,9937  X       113105:C
0018,A003  X       113105:C
0020,000D  U
0020,000E  U
0020,0010  Z
0020,0052  U
0020,0200  U
0020,3401  X
0020,3406  X
0020,4000  X       113105:C
0020,9158  X       113105:C
0020,9161  U
0020,9164  U
0028,1199  U
0028,1214  U
0028,4000  X
0032,0012  X
0032,1020  X       113109:K
0032,1021  X       113109:K
0032,1030  X       113105:C
0032,1032  X
0032,1033  X
0032,1060  X/Z     113105:C
0032,1066  X       113105:C
0032,1067  X       113105:C
0032,1070  X       113105:C
0032,4000  X       113105:C
0034,0001  D
0034,0002  D
0034,0005  D
0034,0007  D       113107:C
0038,0004  X
0038,0010  X
0038,0011  X
0038,0014  X
0038,001E  X
0038,0020  X       113107:C
0038,0021  X       113107:C
0038,0040  X       113105:C
0038,0050  X       113108:C
0038,0060  X
0038,0061  X
0038,0062  X       113105:C
0038,0064  X
0038,0300  X
0038,0400  X
0038,0500  X       113105:C 113108:C
0038,4000  X       113105:C
003A,0310  U
003A,0314  D       113107:C
0040,0001  X       113109:K
0040,0002  X       113107:C
0040,0003  X       113107:C
0040,0004  X       113107:C
0040,0005  X       113107:C
0040,0006  X
0040,0007  X       113105:C
0040,0009  X
0040,000B  X
0040,0010  X       113109:K
0040,0011  X       113109:K
0040,0012  X       113108:C
0040,0241  X       113109:K
0040,0242  X       113109:K
0040,0243  X
0040,0244  X       113107:C
0040,0245  X       113107:C
0040,0250  X       113107:C
0040,0251  X       113107:C
0040,0253  X
0040,0254  X       113105:C
0040,0275  X       113105:C
0040,0280  X       113105:C
0040,0310  X       113105:C
0040,050A  X
0040,0512  D
0040,0513  Z
0040,051A  X       113105:C
0040,0551  D
0040,0554  U
0040,0555  X/Z
0040,0562  Z
0040,0600  X       113105:C
0040,0602  X       113105:C
0040,0610  Z
0040,06FA  X
0040,1001  X
0040,1002  X       113105:C
0040,1004  X
0040,1005  X
0040,100A  X       113105:C
0040,1010  X
0040,1011  X
0040,1101  D
0040,1102  X
0040,1103  X
0040,1104  X
0040,1400  X       113105:C
0040,2001  X       113105:C
0040,2008  X
0040,2009  X
0040,2010  X
0040,2011  X
0040,2016  Z
0040,2017  Z
0040,2400  X       113105:C
0040,3001  X
0040,4005  X       113107:C
0040,4008  X       113107:C
0040,4010  X       113107:C
0040,4011  X       113107:C
0040,4023  U
0040,4025  X       113109:K
0040,4027  X       113109:K
0040,4028  X       113109:K
0040,4030  X       113109:K
0040,4034  X
0040,4035  X
0040,4036  X
0040,4037  X
0040,4050  X       113107:C
0040,4051  X       113107:C
0040,4052  X       113107:C
0040,A027  D
0040,A073  D
0040,A075  D
0040,A078  X
0040,A07A  X
0040,A07C  X
0040,A088  Z
0040,A123  D
0040,A124  U
0040,A171  U
0040,A172  U
0040,A192  X       113107:C
0040,A193  X       113107:C
0040,A307  X
0040,A352  X
0040,A353  X
0040,A354  X
0040,A358  X
0040,A402  U
0040,A730  D
0040,DB0C  U
0040,DB0D  U
0050,001B  X
0050,0020  X       113109:K
0050,0021  X       113105:C
0062,0021  U
0070,0001  D
0070,0084  Z/D
0070,0086  X
0070,031A  U
0070,1101  U
0070,1102  U
0088,0140  U
0088,0200  X
0088,0904  X
0088,0906  X
0088,0910  X
0088,0912  X
0400,0100  U
0400,0402  X
0400,0403  X
0400,0404  X
0400,0550  X
0400,0551  X
0400,0552  X
0400,0561  X
0400,0600  X
2030,0020  X
2200,0002  X/Z     113105:C
2200,0005  X/Z
3006,0002  D       113105:C
3006,0004  X       113105:C
3006,0006  X       113105:C
3006,0008  Z       113107:C
3006,0009  X/D     113107:C
3006,0024  U
3006,0026  Z       113105:C
3006,0028  X       113105:C
3006,0038  X       113105:C
3006,0085  X       113105:C
3006,0088  X       113105:C
3006,00A6  Z
3006,00C2  U
3008,0054  X/D     113107:C
3008,0056  X/D     113107:C
3008,0105  X/Z     113109:K
3008,0250  X/D     113107:C
3008,0251  X/D     113107:C
300A,0002  D       113105:C
300A,0003  X       113105:C
300A,0004  X       113105:C
300A,0006  X/D     113107:C
300A,0007  X/D     113107:C
300A,000E  X       113105:C
300A,0013  U
300A,0016  X       113105:C
300A,0072  X       113105:C
300A,0083  U
300A,00B2  X       113109:K
300A,00C3  X       113105:C
300A,00DD  X       113105:C
300A,0196  X       113105:C
300A,01A6  X       113105:C
300A,01B2  X       113105:C
300A,0216  X       113109:K
300A,02EB  X       113105:C
300A,0608  D       113105:C
300A,0609  U
300A,0611  Z
300A,0615  Z
300A,0619  D       113105:C
300A,0623  D       113105:C
300A,062A  D       113105:C
300A,0650  U
300A,0676  X       113105:C
300A,067C  D       113105:C
300A,067D  Z       113105:C
300A,0700  U
300A,0734  D       113105:C
300A,0736  D       113107:C
300A,073A  D       113107:C
300A,0741  D       113107:C
300A,0742  D       113105:C
300A,0760  D       113107:C
300A,0783  D       113105:C
300C,0113  X       113105:C
300E,0008  X/Z
3010,0006  U
3010,000B  U
3010,000F  Z       113105:C
3010,0013  U
3010,0015  U
3010,0017  Z       113105:C
3010,001B  Z
3010,002D  D       113109:K
3010,0031  U
3010,0033  D       113105:C
3010,0034  D       113105:C
3010,0035  D       113105:C
3010,0036  X       113105:C
3010,0037  X       113105:C
3010,0038  D       113105:C
3010,003B  U
3010,0043  Z       113109:K
3010,004C  X/D     113107:C
3010,004D  X/D     113107:C
3010,0054  D       113105:C
3010,0056  X/D     113105:C
3010,005A  Z       113105:C
3010,005C  Z       113105:C
3010,0061  X       113105:C
3010,006E  U
3010,006F  U
3010,0077  D       113105:C
3010,007A  Z       113105:C
3010,007B  Z       113105:C
3010,007F  Z       113105:C
3010,0081  Z       113105:C
4000,0010  X
4000,4000  X
4008,0042  X
4008,0102  X
4008,010A  X
4008,010B  X       113105:C
4008,010C  X
4008,0111  X
4008,0114  X
4008,0115  X       113105:C
4008,0118  X
4008,0119  X
4008,011A  X
4008,0202  X
4008,0300  X       113105:C
4008,4000  X       113105:C
FFFA,FFFA  X
FFFC,FFFC  X
"""


@dataclass(frozen=True)
class AnnexERow:
    """One row of Table E.1-1 (the columns omipacs uses)."""

    tag: BaseTag
    basic: str
    """Basic Profile action code, e.g. ``"X/Z/D"``."""
    options: Mapping[str, str]
    """Option column (CID 7050 code) to action code, for the transcribed columns."""


def _parse(text: str) -> Mapping[BaseTag, AnnexERow]:
    rows: dict[BaseTag, AnnexERow] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        tag_text, basic, *option_texts = line.split()
        group, element = tag_text.split(",")
        tag = Tag(int(group, 16), int(element, 16))
        if basic not in BASIC_CODES:
            raise ValueError(f"Table E.1-1 line {number}: unknown action code {basic!r}")
        options: dict[str, str] = {}
        for option_text in option_texts:
            column, _, code = option_text.partition(":")
            if column not in OPTION_COLUMNS or code not in ("K", "C"):
                raise ValueError(f"Table E.1-1 line {number}: bad option entry {option_text!r}")
            options[column] = code
        if tag in rows:
            raise ValueError(f"Table E.1-1 line {number}: duplicate tag {tag_text}")
        rows[tag] = AnnexERow(tag, basic, MappingProxyType(options))
    return MappingProxyType(rows)


TABLE_E1_1: Final[Mapping[BaseTag, AnnexERow]] = _parse(_TABLE)
"""The transcribed rows, keyed by tag."""
