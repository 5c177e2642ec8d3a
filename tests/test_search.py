"""GET /search on both backends: words and phrases, case and accents, highlights on the
matched words, paging, and never another account's pages."""

from __future__ import annotations

from conftest import LiveServer, Tenant
from processing_helpers import count, drain, text_pdf

# One account's PDF: the words and where they are on which page.
LETTER = [
    [("Referral to Dr. Müller for high blood pressure", 72, 700), ("Pressure of blood was normal last year", 72, 680)],
    [("Metformin 500 mg twice daily", 72, 700), ("blood pressure controlled", 72, 400)],
]


def search(server: LiveServer, tenant: Tenant, q: str, **params: object) -> dict:
    response = server.client.get("/search", params={"q": q, **params}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_words_and_phrases_with_their_highlights_on_the_right_page(server: LiveServer, tenant: Tenant) -> None:
    pdf_id = server.upload(tenant, text_pdf(LETTER)).json()["id"]
    drain(server)
    found = search(server, tenant, "metformin")
    assert found["next_cursor"] is None
    [result] = found["results"]
    assert (result["pdf_id"], result["patient_id"], result["page"]) == (pdf_id, tenant.patient_id, 2)
    assert (result["width"], result["height"]) == (612.0, 792.0)
    assert result["snippet"].startswith("<mark>Metformin</mark> 500 mg")
    [box] = result["highlights"]
    document = server.client.get(f"/pdfs/{pdf_id}/extraction", headers=tenant.headers).json()
    [word] = [w for w in document["pages"][1]["words"] if w[0] == "Metformin"]
    assert [box["x1"], box["y1"], box["x2"], box["y2"]] == word[1:5]
    assert 72 <= box["x1"] < 80 and box["y1"] < 792 - 700 < box["y2"]  # drawn at x 72, baseline 700 from the bottom

    # a phrase must be consecutive: page 1 has "blood pressure" and "Pressure of blood", page 2 "blood pressure"
    pages = {r["page"]: r for r in search(server, tenant, '"blood pressure"')["results"]}
    assert set(pages) == {1, 2}
    assert pages[1]["snippet"].count("<mark>") == 1 and "<mark>blood pressure</mark>" in pages[1]["snippet"]
    assert len(pages[1]["highlights"]) == 2  # the phrase's two words, not "Pressure of blood"
    assert [r["page"] for r in search(server, tenant, '"pressure of blood"')["results"]] == [1]
    # all words must be on the page; any order
    assert [r["page"] for r in search(server, tenant, "twice metformin")["results"]] == [2]
    assert search(server, tenant, "metformin referral")["results"] == []


def test_case_and_accents_do_not_matter(server: LiveServer, tenant: Tenant) -> None:
    server.upload(tenant, text_pdf(LETTER))
    server.upload(tenant, text_pdf([[("Patient MULLER, Zoë", 72, 700)]]))
    drain(server)
    for query in ("müller", "MULLER", "Muller", "MÜLLER"):
        results = search(server, tenant, query)["results"]
        assert len(results) == 2, query
        assert {r["snippet"].split("<mark>")[1].split("</mark>")[0] for r in results} == {"Müller", "MULLER,"}
    assert len(search(server, tenant, '"muller zoe"')["results"]) == 1


def test_another_accounts_pages_are_never_found(server: LiveServer, tenant: Tenant) -> None:
    mine = server.upload(tenant, text_pdf(LETTER)).json()["id"]
    other = server.tenant("Other Clinic")
    theirs = server.upload(other, text_pdf(LETTER)).json()["id"]
    drain(server)
    assert {r["pdf_id"] for r in search(server, tenant, "metformin")["results"]} == {mine}
    assert {r["pdf_id"] for r in search(server, other, "metformin")["results"]} == {theirs}
    # their patient is theirs: 403 as everywhere else, nothing listed
    response = server.client.get("/search", params={"q": "metformin", "patient_id": other.patient_id}, headers=tenant.headers)
    assert response.status_code == 403 and response.json()["code"] == "patient_forbidden"
    assert count(server, "audit_events", "action = 'search' AND account_id = :a", a=tenant.account_id) == 2


def test_patient_filter_and_paging_with_a_cursor(server: LiveServer, tenant: Tenant) -> None:
    second = server.client.post("/patients", headers=tenant.headers, json={"name": "John Roe"}).json()["id"]
    ids = [server.upload(tenant, text_pdf(LETTER)).json()["id"] for _ in range(3)]
    ids.append(server.upload(tenant, text_pdf(LETTER), patient_id=second).json()["id"])
    drain(server)
    seen: list[tuple[str, int]] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = search(server, tenant, "blood pressure", **params)
        seen += [(r["pdf_id"], r["page"]) for r in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # a cursor continues its own search only
        stray = server.client.get("/search", params={"q": "metformin", "cursor": cursor}, headers=tenant.headers)
        assert stray.status_code == 400 and stray.json()["code"] == "bad_cursor"
    assert sorted(seen) == sorted((pdf_id, page) for pdf_id in ids for page in (1, 2))
    only = search(server, tenant, "metformin", patient_id=second)["results"]
    assert [(r["pdf_id"], r["patient_id"]) for r in only] == [(ids[3], second)]


def test_bad_queries_are_400_with_a_stable_code(server: LiveServer, tenant: Tenant) -> None:
    for params, code in (
        ({"q": ""}, "bad_query"),
        ({"q": "!!! ..."}, "bad_query"),
        ({"q": "x" * 501}, "bad_query"),
        ({"q": "blood", "limit": 0}, "bad_limit"),
        ({"q": "blood", "limit": 101}, "bad_limit"),
        ({"q": "blood", "cursor": "not-a-cursor"}, "bad_cursor"),
    ):
        response = server.client.get("/search", params=params, headers=tenant.headers)
        assert response.status_code == 400 and response.json()["code"] == code, params
    assert server.client.get("/search", params={"q": "blood"}).status_code == 401


def test_best_matches_come_first(server: LiveServer, tenant: Tenant) -> None:
    once = server.upload(tenant, text_pdf([[("Insulin was mentioned once in this long letter about many other things", 72, 700)]])).json()["id"]
    often = server.upload(tenant, text_pdf([[("Insulin plan: insulin before meals, insulin at night", 72, 700)]])).json()["id"]
    drain(server)
    assert [r["pdf_id"] for r in search(server, tenant, "insulin")["results"]] == [often, once]
