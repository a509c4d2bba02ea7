"""Mail sent with smtplib shows up in the JSON API and on the page, escaped."""

from __future__ import annotations

from tests.mailbox.conftest import Box, mail


async def test_sent_mail_is_listed_newest_first_and_filtered_by_recipient(box: Box) -> None:
    await box.send(mail("praxis@kim.tim.test", "Bitte bestätigen", "Link: https://rd/confirm?t=1"))
    await box.send(mail("klinik@kim.tim.test", "Second", "hello"))
    messages = await box.messages()
    assert [m["subject"] for m in messages] == ["Second", "Bitte bestätigen"]
    first = messages[1]
    assert first["from"] == "Registrierungs-Dienst <rd@tim.test>"
    assert first["to"] == ["praxis@kim.tim.test"]
    assert first["text"] == "Link: https://rd/confirm?t=1"
    assert isinstance(first["date"], str)
    assert [m["subject"] for m in await box.messages("PRAXIS@kim.tim.test")] == ["Bitte bestätigen"]
    assert await box.messages("nobody@kim.tim.test") == []


async def test_envelope_recipients_count_including_bcc(box: Box) -> None:
    message = mail("a@kim.tim.test", "Bcc", "x")
    await box.send(message, to_addrs=["a@kim.tim.test", "hidden@kim.tim.test"])
    [delivered] = await box.messages()
    assert delivered["to"] == ["a@kim.tim.test", "hidden@kim.tim.test"]
    assert [m["subject"] for m in await box.messages("hidden@kim.tim.test")] == ["Bcc"]


async def test_html_only_mail_has_text_with_its_links(box: Box) -> None:
    html = '<p>Bitte <a href="https://rd.tim.test/confirm?token=abc&amp;x=1">bestätigen</a></p>'
    await box.send(mail("p@kim.tim.test", "HTML", html=html))
    [message] = await box.messages()
    assert message["text"] == "Bitte bestätigen <https://rd.tim.test/confirm?token=abc&x=1>"
    detail = (await box.http.get(f"{box.url}/api/messages/{message['id']}")).json()
    assert detail["html"].strip() == html


async def test_pages_escape_everything_and_link_urls(box: Box) -> None:
    evil = "<script>alert('x')</script>"
    await box.send(
        mail(
            "p@kim.tim.test",
            f"Subject {evil}",
            text=f"Body {evil}\nhttps://rd.tim.test/confirm?a=1&b=2",
            html=f"<b>bold</b>{evil}",
        )
    )
    [message] = await box.messages()
    listing = await box.http.get(box.url + "/")
    assert listing.status_code == 200
    assert "<script>" not in listing.text
    assert "Subject &lt;script&gt;" in listing.text
    assert "default-src 'none'" in listing.headers["content-security-policy"]
    page = await box.http.get(f"{box.url}/messages/{message['id']}")
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "<b>bold</b>" not in page.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in page.text
    assert "Body &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
    link = "https://rd.tim.test/confirm?a=1&amp;b=2"
    assert f'<a href="{link}" rel="noopener noreferrer" target="_blank">{link}</a>' in page.text
    assert page.headers["x-content-type-options"] == "nosniff"


async def test_page_filters_by_recipient(box: Box) -> None:
    await box.send(mail("a@kim.tim.test", "for a", "x"))
    await box.send(mail("b@kim.tim.test", "for b", "x"))
    page = (await box.http.get(box.url + "/", params={"to": "b@kim.tim.test"})).text
    assert "for b" in page
    assert "for a" not in page


async def test_ring_keeps_the_newest_messages(box: Box) -> None:
    for n in range(7):
        await box.send(mail("r@kim.tim.test", f"m{n}", "x"))
    assert [m["subject"] for m in await box.messages()] == ["m6", "m5", "m4", "m3", "m2"]


async def test_delete_clears_all_or_one_recipient(box: Box) -> None:
    await box.send(mail("a@kim.tim.test", "for a", "x"))
    await box.send(mail("b@kim.tim.test", "for b", "x"))
    deleted = await box.http.delete(box.url + "/api/messages", params={"to": "a@kim.tim.test"})
    assert deleted.json() == {"deleted": 1}
    assert [m["subject"] for m in await box.messages()] == ["for b"]
    assert (await box.http.delete(box.url + "/api/messages")).json() == {"deleted": 1}
    assert await box.messages() == []


async def test_unknown_api_path_and_method_are_m_unrecognized_like_every_matrix_edge(
    box: Box,
) -> None:
    unknown = await box.http.get(box.url + "/api/nothing")
    assert (unknown.status_code, unknown.json()["errcode"]) == (404, "M_UNRECOGNIZED")
    wrong = await box.http.patch(box.url + "/api/messages")
    assert (wrong.status_code, wrong.json()["errcode"]) == (405, "M_UNRECOGNIZED")
    assert "GET" in wrong.headers["Allow"]


async def test_unknown_message_is_404_as_json_and_as_page(box: Box) -> None:
    api = await box.http.get(box.url + "/api/messages/99")
    assert api.status_code == 404
    assert api.json()["errcode"] == "M_NOT_FOUND"
    page = await box.http.get(box.url + "/messages/<b>")
    assert page.status_code == 404
    assert "<b>" not in page.text


async def test_health(box: Box) -> None:
    assert (await box.http.get(box.url + "/health")).json() == {"status": "ok"}
