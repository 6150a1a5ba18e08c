"""`/sophia`: help, unknown subcommands, `ask`, and capabilities that have not landed yet."""

from __future__ import annotations

from bot.commands import PLANNED
from tests.conftest import answer_requests
from tests.fakes.llm import Text


async def ephemeral(slack, text: str, **kwargs) -> str:
    envelope = await slack.push_slash_command(text, **kwargs)
    [post] = await slack.wait_for_response_url_post(envelope)
    assert post["response_type"] == "ephemeral"
    return post["text"]


async def test_help_lists_every_subcommand(sophia, slack):
    text = await ephemeral(slack, "help")
    for name, usage, *_ in PLANNED:
        assert f"/sophia {usage}" in text, name
    assert "/sophia ask [--model <route>] <text>" in text
    assert not slack.calls_to("chat.postMessage")  # nothing visible to the channel


async def test_empty_text_and_unknown_subcommand_answer_with_help(sophia, slack):
    assert "/sophia help" in await ephemeral(slack, "")
    unknown = await ephemeral(slack, "frobnicate")
    assert "don't know the subcommand `frobnicate`" in unknown
    assert "/sophia help" in unknown
    typo = await ephemeral(slack, "deplyo my-app now please")  # close to `deploy`: not a question
    assert "don't know the subcommand `deplyo`" in typo


async def test_ask_posts_who_asked_and_answers_in_that_thread(sophia, slack, llm):
    llm.script(Text("Use `git rebase -i`."))
    await slack.push_slash_command("ask --model coding how do I squash commits?")
    [stop] = await slack.wait_for_call("chat.stopStream")
    [question] = slack.calls_to("chat.postMessage")
    assert question.args["channel"] == "C0CHAN"
    assert (
        "<@U0USER>" in question.args["text"] and "how do I squash commits?" in question.args["text"]
    )
    answer = slack.message("C0CHAN", stop.args["ts"])
    assert answer["thread_ts"] == question.response["ts"]
    assert "git rebase -i" in answer["text"]
    assert answer_requests(llm)[-1]["model"].endswith("deepseek/deepseek-chat")  # coding route


async def test_free_text_goes_to_the_model(sophia, slack, llm):
    llm.script(Text("Canberra."))
    await slack.push_slash_command("what is the capital of Australia?")
    [stop] = await slack.wait_for_call("chat.stopStream")
    assert "Canberra." in slack.message("C0CHAN", stop.args["ts"])["text"]


async def test_usage_errors_are_ephemeral(sophia, slack, llm):
    bad_route = await ephemeral(slack, "ask --model turbo hello")
    assert "`turbo` is not a model route" in bad_route
    assert "coding" in bad_route
    assert "What should I answer?" in await ephemeral(slack, "ask")
    assert not answer_requests(llm)


async def test_capabilities_without_credentials_name_the_variable_to_set(sophia, slack):
    for command, variable in (
        ("deploy my-app", "FLY_API_TOKEN"),
        ("gpu list", "LAMBDA_API_KEY"),
        ("research what changed in Python 3.13?", "SERPER_API_KEY"),
    ):
        text = await ephemeral(slack, command)
        assert variable in text, command
    assert not slack.calls_to("chat.postMessage")  # told privately, nothing posted


async def test_ask_where_sophia_is_not_a_member_explains_how_to_invite(sophia, slack, llm):
    slack.fail("chat.postMessage", error="not_in_channel")
    text = await ephemeral(slack, "ask hello there")
    assert "/invite @Sophia" in text


async def test_models_shows_routes_reachability_and_todays_spend(sophia, slack, llm):
    await slack.push_slash_command("ask --model coding write a haiku about tests")
    await slack.wait_for_call("chat.stopStream")
    text = await ephemeral(slack, "models")
    for route in ("reasoning", "coding", "speed", "analysis", "fallback"):
        assert f"*{route}*" in text
    assert "key present" in text
    coding_line = next(line for line in text.splitlines() if "*coding*" in line)
    assert "1 request," in coding_line
    assert "Budgets: none set" in text
