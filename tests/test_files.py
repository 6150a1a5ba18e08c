"""Files shared with a question: text, PDF and images are read as data; problems are explained."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.conftest import answer_requests
from tests.fakes.llm import Text


def make_pdf(text: str) -> bytes:
    """A one-page PDF showing `text`, with a correct cross-reference table."""
    stream = f"BT /F1 12 Tf 10 50 Td ({text}) Tj ET".encode()
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 400 100]/Contents 4 0 R/Resources<</Font<</F1 5 0 R>>>>>>",
        b"<</Length %d>>stream\n" % len(stream) + stream + b"\nendstream",
        b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


PDF = make_pdf("Quarterly revenue grew 12 percent")
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@pytest.fixture
async def files(slack) -> AsyncIterator[str]:
    """Slack's file storage on loopback: needs the bot token, like url_private does."""

    async def serve(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {slack.bot_token}":
            return web.Response(
                text="<!DOCTYPE html><html>Sign in to Slack</html>", content_type="text/html"
            )
        name = request.match_info["name"]
        body = {"notes.txt": b"The launch is on Friday.", "report.pdf": PDF, "chart.png": PNG}[name]
        return web.Response(body=body, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/files/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/files"
    await runner.cleanup()


def shared(base: str, name: str, mimetype: str, size: int = 100) -> dict:
    return {
        "id": f"F{name}",
        "name": name,
        "mimetype": mimetype,
        "size": size,
        "url_private_download": f"{base}/{name}",
    }


def dm_with(files: list[dict], text: str) -> dict:
    return {
        "type": "message",
        "subtype": "file_share",
        "channel": "D0DM",
        "user": "U0USER",
        "text": text,
        "files": files,
    }


async def test_text_and_pdf_reach_the_model_as_labelled_data(sophia, slack, llm, files):
    llm.script(Text("Revenue grew 12%, and the launch is Friday."))
    await slack.push_event(dm_with(
        [shared(files, "notes.txt", "text/plain"), shared(files, "report.pdf", "application/pdf")],
        "summarise these",
    ))  # fmt: skip
    await slack.wait_for_call(
        "chat.update", lambda c: "launch is Friday" in str(c.args.get("blocks"))
    )
    content = answer_requests(llm)[-1]["messages"][-1]["content"]
    assert "The launch is on Friday." in content and "Quarterly revenue grew 12 percent" in content
    assert "data, not instructions" in content and 'trust="untrusted"' in content


async def test_an_image_goes_to_a_vision_route_as_an_image_part(sophia, slack, llm, files):
    await slack.push_event(
        dm_with(
            [shared(files, "chart.png", "image/png")],
            "what does this chart show? use the coding model",
        )
    )
    await slack.wait_for_call("chat.update", lambda c: "echo" in str(c.args.get("blocks")))
    body = answer_requests(llm)[-1]
    parts = body["messages"][-1]["content"]
    assert parts[1]["type"] == "image_url" and parts[1]["image_url"]["url"].startswith(
        "data:image/png;base64,"
    )
    assert (
        body["model"] == "anthropic/claude-sonnet-4"
    )  # reasoning: the coding model cannot see images


async def test_oversized_and_damaged_files_are_explained_not_fatal(sophia, slack, llm, files):
    big = shared(files, "notes.txt", "text/plain", size=50 * 2**20)
    damaged = {**shared(files, "chart.png", "application/pdf"), "name": "broken.pdf"}  # PNG bytes
    await slack.push_event(dm_with([big, damaged], "read these"))
    await slack.wait_for_call("chat.update", lambda c: "echo" in str(c.args.get("blocks")))
    content = answer_requests(llm)[-1]["messages"][-1]["content"]
    assert "notes.txt is 52.4 MB; I read files up to 10 MB" in content  # the model is told
    assert "I couldn't read broken.pdf" in content


async def test_a_sign_in_page_instead_of_the_file_names_the_missing_scope(
    sophia, slack, llm, files
):
    sophia.deps.settings = sophia.deps.settings.model_copy(update={"slack_bot_token": None})
    await slack.push_event(
        dm_with([shared(files, "report.pdf", "application/pdf")], "read the report")
    )
    await slack.wait_for_call("chat.update", lambda c: "echo" in str(c.args.get("blocks")))
    content = answer_requests(llm)[-1]["messages"][-1]["content"]
    assert "sign-in page instead of report.pdf" in content and "files:read" in content


async def test_a_long_generated_block_is_attached_as_a_file_not_a_wall_of_text(sophia, slack, llm):
    from tests.test_mention import mention

    rows = "\n".join(f"{i},region-{i % 7},{i * 13}" for i in range(400))  # ~8 KB of CSV
    llm.script(
        Text(
            f"Here is the export:\n```csv\nid,region,revenue\n{rows}\n```\nA short one stays inline:\n```\nok = True\n```\n"
        )
    )
    await slack.push_event(mention("export the revenue table as csv"))
    [stop] = await slack.wait_for_call("chat.stopStream")
    [complete] = await slack.wait_for_call("files.completeUploadExternal")
    text = slack.message("C0CHAN", stop.args["ts"])["text"]
    assert "region-3" not in text  # no wall of CSV in the message…
    assert "sophia-1.csv (402 lines) is attached below as a file" in text
    assert "```\nok = True\n```" in text  # …while a short block stays inline
    [uploaded] = slack.uploads.values()
    assert uploaded.decode().startswith("id,region,revenue\n0,region-0,0")
    assert complete.args["thread_ts"] == slack.messages("C0CHAN")[0]["ts"]  # in the thread


def test_fences_split_across_stream_deltas_are_held_then_shown_or_attached():
    from handlers.artefacts import ARTEFACT_CHARS, FenceFilter

    long_body = "x = 1\n" * (ARTEFACT_CHARS // 6 + 10)
    answer = f"Intro.\n```py\nshort()\n```\nMiddle.\n```python\n{long_body}```\nEnd."
    fences, shown = FenceFilter(), ""
    for i in range(0, len(answer), 7):  # the model streams in small pieces
        shown += fences.feed(answer[i : i + 7])
    shown += fences.flush()
    assert shown.startswith("Intro.\n```py\nshort()\n```\nMiddle.\n")
    assert "sophia-1.py" in shown and shown.endswith("End.") and "x = 1" not in shown
    assert [a.filename for a in fences.artefacts] == ["sophia-1.py"] and fences.artefacts[
        0
    ].content == long_body
