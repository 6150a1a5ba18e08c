"""A chart asked for is drawn from the answer's table and attached in the thread as a PNG."""

from __future__ import annotations

import io

import pytest

from bot.charts import Table, chart_png, first_table, number, wants_chart
from tests.fakes.llm import Text
from tests.test_mention import mention

pytestmark = pytest.mark.filterwarnings("ignore")

ANSWER = """Revenue by quarter:

| Quarter | Revenue ($k) | Costs ($k) |
|---|---:|---:|
| Q1 | 1,200 | 800 |
| Q2 | 1,450 | 820 |
| Q3 | 1,610 | 900 |

Q3 grew 11% over Q2."""


def test_asking_for_a_chart_is_recognised_in_english_and_japanese():
    assert wants_chart("plot revenue by quarter") and wants_chart("売上をグラフにして")
    assert not wants_chart("what was revenue by quarter?")


def test_tables_and_numbers_are_read_as_people_write_them():
    table = first_table(ANSWER)
    assert table == Table(
        ["Quarter", "Revenue ($k)", "Costs ($k)"],
        [["Q1", "1,200", "800"], ["Q2", "1,450", "820"], ["Q3", "1,610", "900"]],
    )
    assert [number(x) for x in ("1,200", "$5.5", "12%", "3.4k", "n/a")] == [
        1200, 5.5, 12, 3400, None,
    ]  # fmt: skip
    csv = first_table("Here:\n```csv\nday,visits\nMon,10\nTue,14\n```")
    assert csv == Table(["day", "visits"], [["Mon", "10"], ["Tue", "14"]])
    assert (
        chart_png(Table(["name", "team"], [["Ann", "red"], ["Bo", "blue"]])) is None
    )  # no numbers


async def test_a_chart_request_gets_a_png_of_the_answers_table_in_the_thread(sophia, slack, llm):
    llm.script(Text(ANSWER))
    await slack.push_event(mention("chart revenue and costs by quarter"))
    [stop] = await slack.wait_for_call("chat.stopStream")
    [complete] = await slack.wait_for_call("files.completeUploadExternal")
    assert complete.args["thread_ts"] == slack.messages("C0CHAN")[0]["ts"]
    [png] = slack.uploads.values()
    assert png.startswith(b"\x89PNG")
    from PIL import Image  # matplotlib's own dependency

    image = Image.open(io.BytesIO(png))
    assert image.size[0] > 600 and image.size[1] > 300
    assert "| Q3 | 1,610 | 900 |" in slack.message("C0CHAN", stop.args["ts"])["text"]


async def test_no_chart_when_none_was_asked_for(sophia, slack, llm):
    llm.script(Text(ANSWER))
    await slack.push_event(mention("what was revenue by quarter?"))
    await slack.wait_for_call("chat.stopStream")
    llm.script(Text("You're welcome."))
    await slack.push_event(mention("thanks"), event_id="Ev0NEXT")
    await slack.wait_for_call("chat.stopStream", count=2)
    assert not slack.calls_to("files.completeUploadExternal")
