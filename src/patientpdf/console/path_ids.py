"""Ids in console paths follow the API's one rule (security.ids.parse_row_id): anything else
names nothing and is answered as an unknown id (404), never as a validation error."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from patientpdf.errors import NotFound
from patientpdf.security.ids import parse_row_id
from patientpdf.services.patients import no_patient_with_this_id


async def _patient_id(patient_id: Annotated[str, Path()]) -> int:
    parsed = parse_row_id(patient_id)
    if parsed is None:
        raise no_patient_with_this_id()
    return parsed


async def _key_id(key_id: Annotated[str, Path()]) -> int:
    parsed = parse_row_id(key_id)
    if parsed is None:
        raise NotFound("No such key in your account.", code="key_not_found")
    return parsed


PatientId = Annotated[int, Depends(_patient_id)]
KeyId = Annotated[int, Depends(_key_id)]
