"""Search across the account's PDFs, as GET /search does."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
