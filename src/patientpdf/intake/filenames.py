"""The stored file name: the client's `filename` field, cleaned of path parts and control characters."""

from __future__ import annotations

import re
import unicodedata

from patientpdf.errors import BadRequest

MAX_FILENAME_BYTES = 255
_PATH_SEPARATORS = re.compile(r"[\\/]")
# Cc: control characters; Cf: invisible format characters such as U+202E, which can make
# "report\u202efdp.exe" display as "reportexe.pdf".
_DROPPED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}


def clean_filename(raw: str | None) -> str:
    if raw is None:
        raise BadRequest(
            "The form field 'filename' is missing. Send it next to 'file', e.g. --form 'filename=report.pdf'.",
            code="missing_filename",
        )
    name = unicodedata.normalize("NFC", raw)
    name = _PATH_SEPARATORS.split(name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in _DROPPED_CATEGORIES).strip()
    if not name.lower().endswith(".pdf") or not name[:-4].strip(" ."):
        raise BadRequest(
            "The filename must include the .pdf extension and a name before it, e.g. 'report.pdf'.",
            code="invalid_filename",
        )
    if len(name.encode("utf-8")) > MAX_FILENAME_BYTES:
        raise BadRequest(
            f"The filename is longer than {MAX_FILENAME_BYTES} bytes (UTF-8). Send a shorter name.",
            code="filename_too_long",
        )
    return name
