"""Web research plumbing: search providers with fallback, page reading, unblockers, SSRF, cache.

Real aiohttp against `tests/fakes/search.py` on loopback; the cache is a real SQLite store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.errors import FetchError, ResearchError
from bot.doctor import run_checks
from bot.registry import Registry
from bot.settings import Settings
from bot.store import Store
from integrations.research import Research, dedupe, register_checks, research_from_settings
from tests.fakes.search import PROVIDERS, UNBLOCKERS, FakeSearch

RESEARCH_ENV = [f"{n.upper()}_API_{k}" for n in PROVIDERS + UNBLOCKERS for k in ("KEY", "URL")]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*RESEARCH_ENV, "SOPHIA_RESEARCH_PROVIDERS", "SOPHIA_RESEARCH_ALLOW_PRIVATE"]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSearch]:
    async with FakeSearch() as server:
        yield server


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    db = await Store.open(f"sqlite:///{tmp_path}/sophia.db")
    yield db
    await db.close()


def settings_for(
    fake: FakeSearch,
    tmp_path: Path,
    *,
    providers: tuple[str, ...] = PROVIDERS,
    unblockers: tuple[str, ...] = (),
    **overrides: Any,
) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "research_allow_private": True,  # the fake web is on loopback
        **fake.settings(providers, unblockers),
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture
async def make(fake: FakeSearch, tmp_path: Path, store: Store):
    """Build a `Research` (closed at the end) from settings overrides."""
    made: list[Research] = []

    def build(*, cache: bool = False, timeout_s: float = 10.0, **kwargs: Any) -> Research:
        research = Research(
            settings_for(fake, tmp_path, **kwargs),
            store if cache else None,
            provider_timeout_s=timeout_s,
        )
        made.append(research)
        return research

    yield build
    for research in made:
        await research.close()


def article(title: str, sentence: str, repeat: int = 12) -> str:
    paragraphs = "".join(f"<p>{sentence} Paragraph {i} adds detail.</p>" for i in range(repeat))
    return (
        f"<html><head><title>{title}</title></head><body><nav>Home | About</nav>"
        f"<article><h1>{title}</h1>{paragraphs}</article><footer>© site</footer></body></html>"
    )


# -- search: fallback and order ------------------------------------------------------------
async def test_first_provider_error_falls_back_to_the_second(fake, make):
    fake.behave("serper", status=500)
    results = await make().search("qdrant edge")
    assert results.provider == "brave"
    assert results.tried == [("serper", "HTTP 500"), ("brave", "ok")]
    assert [h.url for h in results.hits] == [r["url"] for r in fake.results]
    assert {h.provider for h in results.hits} == {"brave"}
    assert not fake.calls_to("tavily")  # the chain stops at the first answer


async def test_timeouts_and_empty_answers_move_on(fake, make):
    fake.behave("serper", delay=1.0)
    fake.behave("brave", empty=True)
    fake.behave("tavily", invalid_json=True)
    results = await make(timeout_s=0.2).search("qdrant edge")
    assert results.tried == [
        ("serper", "timed out"),
        ("brave", "no results"),
        ("tavily", "invalid JSON"),
        ("exa", "ok"),
    ]
    assert results.provider == "exa"


async def test_provider_without_key_is_skipped(fake, make):
    research = make(providers=("brave", "exa"))
    assert research.providers == ["brave", "exa"]
    results = await research.search("qdrant edge")
    assert results.tried == [("brave", "ok")]  # unlisted keyless providers are not mentioned


async def test_listed_provider_without_key_is_reported_and_order_is_followed(fake, make):
    research = make(providers=("exa", "brave"), research_providers="serper,exa,brave")
    assert research.providers == ["exa", "brave"]
    results = await research.search("qdrant edge")
    assert results.tried == [("serper", "no key"), ("exa", "ok")]
    assert not fake.calls_to("serper") and not fake.calls_to("brave")


async def test_an_unknown_provider_name_is_reported_not_fatal(fake, make):
    fake.behave("serper", status=500)
    with pytest.raises(ResearchError) as caught:
        await make(research_providers="serper,bing").search("anything")
    assert "bing: not a provider Sophia knows" in str(caught.value)
    assert "Serper had a server error (HTTP 500)" in str(caught.value)


async def test_all_fail_lists_what_was_tried_in_plain_words(fake, make):
    fake.behave("serper", status=500)
    fake.behave("brave", status=429)
    fake.behave("tavily", invalid_json=True)
    fake.behave("exa", empty=True)
    with pytest.raises(ResearchError) as caught:
        await make(serpapi_api_key="serpapi-wrong-key-0123456789").search("qdrant edge")
    message = str(caught.value)
    assert "Serper had a server error (HTTP 500)" in message
    assert "Brave Search is over its rate limit or quota (HTTP 429)" in message
    assert "Tavily sent an answer that was not JSON" in message
    assert "Exa found nothing" in message
    assert "SerpAPI refused the key (HTTP 401; check SERPAPI_API_KEY)" in message
    assert "serpapi-wrong-key" not in message and "Traceback" not in message


async def test_no_provider_configured_names_the_variables(fake, make, tmp_path):
    research = make(providers=())
    with pytest.raises(ResearchError) as caught:
        await research.search("anything")
    for variable in (
        "SERPER_API_KEY",
        "BRAVE_API_KEY",
        "TAVILY_API_KEY",
        "EXA_API_KEY",
        "SERPAPI_API_KEY",
    ):
        assert variable in str(caught.value)
    assert research_from_settings(settings_for(fake, tmp_path, providers=())) is None


@pytest.mark.parametrize("name", PROVIDERS)
async def test_each_provider_speaks_its_documented_wire_format(fake, make, name):
    results = await make(providers=(name,)).search("vector search", limit=2)
    assert results.provider == name
    first = results.hits[0]
    assert first.title == "Qdrant Edge: embedded vector search"
    assert first.url == "https://qdrant.tech/blog/qdrant-edge/"
    assert "inside your process" in first.snippet
    assert first.published == "2025-07-01"
    assert results.hits[1].published == "2025-01-05"  # "Jan 5, 2025" normalised
    (call,) = fake.calls_to(name)
    sent_query = (call.json or {}).get("q") or (call.json or {}).get("query") or call.query.get("q")
    assert sent_query == "vector search"


async def test_results_are_deduplicated_by_canonical_url(fake, make):
    fake.results = [
        {"title": "A", "url": "https://www.example.com/a/?utm_source=x#top", "snippet": "one"},
        {"title": "A again", "url": "https://EXAMPLE.com/a?gclid=123", "snippet": "two"},
        {"title": "B", "url": "https://example.com/b?page=2", "snippet": "three"},
        {"title": "Not web", "url": "ftp://example.com/file", "snippet": "skip"},
    ]
    first = await make().search("dedupe me")
    assert [h.title for h in first.hits] == ["A", "B"]

    # Across providers: the next query is answered by Brave, with an overlapping page.
    fake.behave("serper", status=503)
    fake.behave("brave", results=[
        {"title": "B via Brave", "url": "https://www.example.com/b/?page=2&utm_medium=mail", "snippet": ""},
        {"title": "C", "url": "https://example.com/c", "snippet": "four"},
    ])  # fmt: skip
    second = await make().search("second query")
    assert second.provider == "brave"
    merged = dedupe(first.hits + second.hits)
    assert [(h.title, h.provider) for h in merged] == [
        ("A", "serper"),
        ("B", "serper"),
        ("C", "brave"),
    ]


async def test_search_cache_hit_avoids_a_second_provider_call(fake, make):
    research = make(cache=True)
    first = await research.search("cached question")
    again = await research.search("  cached   question ")
    assert not first.cached and again.cached
    assert again.hits == first.hits and again.provider == first.provider
    assert len(fake.calls_to("serper")) == 1


async def test_a_cache_shared_through_the_database_serves_a_second_replica(fake, make):
    await make(cache=True).search("shared")
    replica = await make(cache=True).search("shared")
    assert replica.cached and len(fake.calls_to("serper")) == 1


# -- fetching pages -------------------------------------------------------------------------
async def test_reads_a_page_with_trafilatura(fake, make):
    url = fake.add_page(
        "/post", article("Edge vectors", "Embedded stores answer in a millisecond.")
    )
    page = await make().fetch(url)
    assert page.via == "direct" and page.final_url == url and not page.truncated
    assert page.title == "Edge vectors"
    assert "answer in a millisecond" in page.text
    assert "Home | About" not in page.text  # navigation is not content


async def test_page_cache_hit_avoids_a_second_fetch(fake, make):
    url = fake.add_page("/once", article("Once", "Fetched a single time."))
    research = make(cache=True)
    first = await research.fetch(url)
    second = await research.fetch(url + "?utm_source=slack")
    assert not first.cached and second.cached and second.text == first.text
    assert len(fake.calls_to("web")) == 1


async def test_a_403_page_is_read_through_brightdata(fake, make):
    url = fake.add_blocked("/paywall", article("Behind the wall", "The unblocked text is here."))
    page = await make(unblockers=UNBLOCKERS).fetch(url)
    assert page.via == "brightdata"
    assert "unblocked text is here" in page.text
    (call,) = fake.calls_to("brightdata")
    assert call.json == {"zone": "web_unlocker1", "url": url, "format": "raw"}
    assert not fake.calls_to("zenrows")


async def test_zenrows_is_tried_when_brightdata_fails(fake, make):
    fake.behave("brightdata", status=502)
    fake.add_redirect("/moved", "/ratelimited")
    url = fake.add_blocked("/ratelimited", article("Busy", "Rate limited for bots."), status=429)
    page = await make(unblockers=UNBLOCKERS).fetch(url)
    assert page.via == "zenrows" and "Rate limited for bots" in page.text
    (call,) = fake.calls_to("zenrows")
    assert call.query["url"] == url and call.query["apikey"] == fake.keys.zenrows


async def test_a_captcha_page_goes_to_an_unblocker(fake, make):
    url = fake.add_captcha("/guarded", article("Guarded", "Humans see this paragraph."))
    page = await make(unblockers=("zenrows",)).fetch(url)
    assert page.via == "zenrows" and "Humans see this paragraph" in page.text
    assert "Verify you are human" not in page.text


async def test_a_short_page_with_a_captcha_comment_form_is_read_directly(fake, make):
    form = '<form id="comments"><div class="g-recaptcha" data-sitekey="k"></div></form>'
    html = article("Short post", "Only a few lines here.", repeat=3).replace(
        "</article>", "</article>" + form
    )
    page = await make(unblockers=UNBLOCKERS).fetch(fake.add_page("/short", html))
    assert page.via == "direct" and "a few lines" in page.text
    assert not fake.calls_to("brightdata") and not fake.calls_to("zenrows")


async def test_refused_page_without_unblockers_says_what_to_set(fake, make):
    url = fake.add_blocked("/403", "<html><body>secret</body></html>")
    with pytest.raises(FetchError) as caught:
        await make().fetch(url)
    assert "HTTP 403" in str(caught.value) and "BRIGHTDATA_API_KEY" in str(caught.value)


async def test_unblockers_that_also_fail_are_listed(fake, make):
    fake.behave("brightdata", status=500)
    fake.behave("zenrows", status=401)
    url = fake.add_captcha("/wall", article("Wall", "Never seen."))
    with pytest.raises(FetchError) as caught:
        await make(unblockers=UNBLOCKERS).fetch(url)
    message = str(caught.value)
    assert "a captcha page" in message
    assert "BrightData: answered HTTP 500" in message and "ZenRows: answered HTTP 401" in message


async def test_an_oversized_page_is_truncated(fake, make):
    body = article("Huge", "This sentence repeats to make a very large page indeed.", repeat=40_000)
    assert len(body) > 3_000_000
    url = fake.add_page("/huge", body)
    page = await make().fetch(url)
    assert page.truncated
    assert 0 < len(page.text) <= 40_000
    assert "very large page" in page.text


async def test_a_redirect_loop_is_bounded(fake, make):
    fake.add_redirect("/loop-a", "/loop-b")
    url = fake.add_redirect("/loop-b", "/loop-a")
    with pytest.raises(FetchError) as caught:
        await make().fetch(url)
    assert "kept redirecting" in str(caught.value)
    assert len(fake.calls_to("web")) == 6  # the first request and five redirects


async def test_redirects_are_followed_to_the_final_page(fake, make):
    target = fake.add_page("/final", article("Final", "Arrived after two hops."))
    fake.add_redirect("/hop2", target, status=301)
    url = fake.add_redirect("/hop1", "/hop2", status=307)
    page = await make().fetch(url)
    assert page.final_url == target and page.url == url and "two hops" in page.text


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/post",
        "http://localhost:{port}/post",  # a name that resolves to loopback
        "http://[::1]:{port}/post",
        "http://[::ffff:127.0.0.1]:{port}/post",  # IPv4-mapped IPv6
        "http://10.0.0.8/admin",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://0.0.0.0:{port}/",
    ],
)
async def test_private_addresses_are_refused_in_production(fake, make, url):
    fake.add_page("/post", article("Internal", "Private data."))
    port = fake.base_url.rsplit(":", 1)[1]
    with pytest.raises(FetchError) as caught:
        await make(research_allow_private=False).fetch(url.format(port=port))
    assert "does not read that link" in str(caught.value)
    assert not fake.calls_to("web")


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[ff02::1]/",
    ],
)
async def test_a_redirect_to_a_forbidden_address_is_refused(fake, make, location):
    # Loopback is open here (the test web lives there); metadata and multicast never are.
    url = fake.add_redirect("/jump", location)
    with pytest.raises(FetchError) as caught:
        await make().fetch(url)
    assert "redirects to" in str(caught.value) and "does not read" in str(caught.value)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "javascript:alert(1)", "gopher://x/"]
)
async def test_only_http_and_https(make, url):
    with pytest.raises(FetchError) as caught:
        await make().fetch(url)
    assert "only http and https" in str(caught.value)


async def test_non_text_content_is_refused(fake, make):
    url = fake.add_page("/logo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, content_type="image/png")
    with pytest.raises(FetchError) as caught:
        await make().fetch(url)
    assert "image/png" in str(caught.value) and "not a web page, text or PDF" in str(caught.value)


async def test_pdf_and_plain_text_are_read(fake, make):
    research = make()
    pdf = await research.fetch(
        fake.add_pdf("/paper.pdf", "Quarterly revenue grew 12 percent.", title="Q3 report")
    )
    assert pdf.title == "Q3 report" and "revenue grew 12 percent" in pdf.text
    txt = await research.fetch(
        fake.add_page("/notes.txt", "plain notes here", content_type="text/plain")
    )
    assert txt.text == "plain notes here"


async def test_missing_page_is_a_plain_error(fake, make):
    with pytest.raises(FetchError) as caught:
        await make().fetch(fake.page_url("/nope"))
    assert "answered HTTP 404" in str(caught.value)


# -- sophia doctor --------------------------------------------------------------------------
async def test_doctor_checks_each_configured_provider(fake, tmp_path):
    fake.behave("tavily", status=500)
    settings = settings_for(fake, tmp_path, providers=("serper", "tavily"))
    registry = Registry()
    register_checks(registry)
    outcome = {
        check.system: (configured, result)
        for check, configured, result in await run_checks(settings, registry)
    }
    assert outcome["Search: Serper"][1].ok
    assert not outcome["Search: Tavily"][1].ok and "HTTP 500" in outcome["Search: Tavily"][1].detail
    assert outcome["Search: Brave Search"] == (False, None)
    assert [c.json["num"] for c in fake.calls_to("serper")] == [1]
