"""Fake but realistic-looking UK patient identities for demonstration data.

The demo archive must look like what an NHS breast screening PACS sends, so that
de-identification is exercised against values that *look* identifying: a full name,
a modulus-11-valid NHS number, a hospital number, a date of birth, an address with a
postcode and a telephone number. None of these belong to a real person:

- NHS numbers are drawn from the ``999`` range, which NHS England reserves for test
  data and never allocates to patients (the check digit is still valid, so validators
  and pattern scanners treat them as real).
- Telephone numbers come from the Ofcom ranges set aside for drama and fiction
  (``07700 900xxx``, ``0113 496 0xxx`` and similar).
- Names, streets and towns are common words combined at random.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

NHS_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
"""Weights of the first nine digits in the NHS number modulus 11 check."""

NHS_TEST_PREFIX = "999"
"""Leading digits of the NHS number range reserved for test data."""

_GIVEN = (
    "Margaret",
    "Susan",
    "Linda",
    "Patricia",
    "Christine",
    "Elizabeth",
    "Janet",
    "Carol",
    "Karen",
    "Julie",
    "Alison",
    "Jacqueline",
    "Deborah",
    "Gillian",
    "Helen",
    "Sarah",
    "Amanda",
    "Joanne",
    "Nicola",
    "Tracey",
    "Samina",
    "Parveen",
    "Grace",
    "Bernadette",
    "Fiona",
    "Rachel",
    "Angela",
    "Lorraine",
    "Wendy",
    "Pauline",
    "Denise",
    "Yvonne",
)
_MIDDLE = ("Anne", "Mary", "Louise", "Jane", "Elizabeth", "Rose", "Claire", "Ann", "")
_SURNAME = (
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Patel",
    "Khan",
    "Hughes",
    "Edwards",
    "Lewis",
    "Harrison",
    "Okafor",
    "Begum",
    "Murphy",
    "Kelly",
    "Turner",
    "Hussain",
    "Ahmed",
)
_TITLES = ("Mrs", "Ms", "Miss", "Dr")
_STREETS = (
    "Acacia Avenue",
    "Mill Lane",
    "Church Road",
    "Station Road",
    "Victoria Street",
    "Park Crescent",
    "The Green",
    "Highfield Road",
    "Manor Way",
    "Orchard Close",
    "Albert Terrace",
    "Beech Grove",
    "Kingsway",
    "Queens Drive",
    "Meadow View",
)
# (town, postcode area, Ofcom drama landline prefix)
_TOWNS = (
    ("Guildford", "GU", "01632 960"),
    ("Leeds", "LS", "0113 496 0"),
    ("Manchester", "M", "0161 496 0"),
    ("Birmingham", "B", "0121 496 0"),
    ("London", "SE", "020 7946 0"),
    ("Bristol", "BS", "0117 496 0"),
    ("Nottingham", "NG", "0115 496 0"),
    ("Sheffield", "S", "0114 496 0"),
)
_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # letters allowed in the inward code of a UK postcode
_CLINICIANS = ("Ashworth", "Hart", "Osei", "Lindqvist", "Campbell", "Shah", "Moreau", "Byrne")
_RADIOGRAPHERS = ("Fletcher", "Nwosu", "Grant", "Doyle", "Mistry", "Bell", "Quinn", "Price")


@dataclass(frozen=True)
class FakePatient:
    """A fake screening client as a site PACS would describe her.

    Attributes
    ----------
    name : str
        DICOM PN value, ``FAMILY^Given^Middle^^Title`` as many UK RIS systems send it.
    nhs_number : str
        Ten digits, modulus-11 valid, from the test range.
    local_id : str
        Hospital (PAS) number, the usual PatientID at a site.
    birth_date : datetime.date
        Date of birth; screening ages follow from it.
    address : str
        Postal address with a postcode (DICOM LO allows 64 characters).
    phone : str
        Telephone number from an Ofcom drama range.
    sex : str
        DICOM PatientSex; always ``"F"`` in breast screening.
    """

    name: str
    nhs_number: str
    local_id: str
    birth_date: date
    address: str
    phone: str
    sex: str = "F"


def nhs_check_digit(first_nine: str) -> int | None:
    """Return the NHS number check digit for nine digits, or None if none exists.

    The check is modulus 11 with weights 10 down to 2: the digit is ``11 - r`` where
    ``r`` is the weighted sum modulo 11; 11 becomes 0 and 10 means the nine digits
    cannot start a valid NHS number.
    """
    if len(first_nine) != 9 or not first_nine.isdigit():
        raise ValueError("an NHS number check digit needs exactly nine digits")
    total = sum(int(d) * w for d, w in zip(first_nine, NHS_WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def is_valid_nhs_number(value: str) -> bool:
    """Tell whether ``value`` is a ten-digit NHS number with a correct check digit.

    Spaces and hyphens are ignored, so ``"943 476 5919"`` is accepted as printed on
    NHS letters.
    """
    digits = re.sub(r"[\s-]", "", value)
    if len(digits) != 10 or not digits.isdigit():
        return False
    return nhs_check_digit(digits[:9]) == int(digits[9])


def valid_nhs_number(rng: np.random.Generator) -> str:
    """Draw a modulus-11-valid NHS number from the test range ``999 xxx xxxx``."""
    while True:
        body = NHS_TEST_PREFIX + "".join(str(d) for d in rng.integers(0, 10, 6))
        check = nhs_check_digit(body)
        if check is not None:
            return body + str(check)


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _postcode(rng: np.random.Generator, area: str) -> str:
    district = int(rng.integers(1, 20))
    sector = int(rng.integers(1, 10))
    unit = _LETTERS[int(rng.integers(len(_LETTERS)))] + _LETTERS[int(rng.integers(len(_LETTERS)))]
    return f"{area}{district} {sector}{unit}"


def fake_person_name(rng: np.random.Generator, *, title: str = "Dr") -> str:
    """Return a DICOM PN for staff (referrer, reader, radiographer)."""
    surname = _pick(rng, _CLINICIANS + _RADIOGRAPHERS).upper()
    return f"{surname}^{_pick(rng, _GIVEN)}^^{title}".rstrip("^")


def fake_patient(
    rng: np.random.Generator,
    *,
    born_between: tuple[date, date] = (date(1945, 1, 1), date(1975, 12, 31)),
) -> FakePatient:
    """Draw a plausible fake UK screening client.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random choice, so a seeded generator gives the same patient.
    born_between : tuple of datetime.date
        Inclusive range for the date of birth; the default puts women born 1945-1975
        inside the NHS screening ages (50-71) for studies dated 2010-2024.
    """
    given, middle, surname = _pick(rng, _GIVEN), _pick(rng, _MIDDLE), _pick(rng, _SURNAME)
    span = (born_between[1] - born_between[0]).days
    birth = born_between[0] + timedelta(days=int(rng.integers(span + 1)))
    town, area, landline = _TOWNS[int(rng.integers(len(_TOWNS)))]
    house = int(rng.integers(1, 200))
    address = f"{house} {_pick(rng, _STREETS)}, {town}, {_postcode(rng, area)}"
    if rng.random() < 0.5:
        phone = f"07700 900{int(rng.integers(1000)):03d}"
    else:
        phone = f"{landline}{int(rng.integers(1000)):03d}"
    return FakePatient(
        name=f"{surname.upper()}^{given}^{middle}^^{_pick(rng, _TITLES)}",
        nhs_number=valid_nhs_number(rng),
        local_id=f"{area[0]}{int(rng.integers(10**6, 10**7))}",
        birth_date=birth,
        address=address,
        phone=phone,
    )
