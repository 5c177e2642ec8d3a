"""Patients: create, list, read, with the API family's fields."""

from __future__ import annotations

import httpx

from conftest import LiveServer, Tenant, sample

PATIENT_FIELDS = ["id", "name", "dob", "sex", "additional_variables", "pdf_file", "pdf_json_cache"]


def test_create_list_and_get(server: LiveServer, tenant: Tenant) -> None:
    response = server.client.post(
        "/patients",
        headers=tenant.headers,
        json={"name": "John Doe", "dob": "1990-12-31", "sex": "M", "additional_variables": {"mrn": "A-1"}},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert list(created) == PATIENT_FIELDS
    assert created["dob"] == "1990-12-31" and created["additional_variables"] == {"mrn": "A-1"}
    assert created["pdf_file"] is None and created["pdf_json_cache"] is None
    assert response.headers["location"] == f"/patients/{created['id']}/"
    listed = server.client.get("/patients", headers=tenant.headers).json()
    assert [p["id"] for p in listed] == [tenant.patient_id, created["id"]]
    for path in (f"/patients/{created['id']}/", f"/patients/{created['id']}"):
        assert server.client.get(path, headers=tenant.headers).json() == created


def test_pdf_file_is_the_newest_pdfs_link(server: LiveServer, tenant: Tenant) -> None:
    server.upload(tenant, sample("valid.pdf"))
    newest = server.upload(tenant, sample("owner_password.pdf")).json()
    patient = server.client.get(f"/patients/{tenant.patient_id}/", headers=tenant.headers).json()
    assert patient["pdf_file"].split("?")[0] == newest["url"].split("?")[0]
    assert httpx.get(patient["pdf_file"]).content == sample("owner_password.pdf")
    listed = server.client.get("/patients", headers=tenant.headers).json()
    assert listed[0]["pdf_file"].split("?")[0] == newest["url"].split("?")[0]


def test_invalid_patient_bodies_are_422_with_a_clear_detail(server: LiveServer, tenant: Tenant) -> None:
    for body in ({}, {"name": ""}, {"name": "x", "dob": "31/12/1990"}, {"name": "x", "unknown": 1}):
        response = server.client.post("/patients", headers=tenant.headers, json=body)
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
        assert response.json()["detail"].startswith("Invalid request: ")
    response = server.client.post("/patients", headers={**tenant.headers, "Content-Type": "application/json"}, content=b"{nope")
    assert response.status_code == 422 and set(response.json()) == {"detail", "code"}
