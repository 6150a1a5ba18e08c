"""Tests for the fast routing scorer and the model-classifier helpers."""

import json
from pathlib import Path

import pytest

from bot.core.routing import (
    ROUTES,
    UNSURE_BELOW,
    RouteChoice,
    classifier_prompt,
    clean_slack_text,
    explicit_override,
    parse_classifier_answer,
    score,
)

DATA = Path(__file__).parent / "data"


def _rows(name: str) -> list[dict]:
    with (DATA / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _accuracy(rows: list[dict]) -> float:
    return sum(score(r["text"]).route == r["route"] for r in rows) / len(rows)


# --- clear cases per route ----------------------------------------------------------------------


def test_pasted_python_traceback_is_coding():
    text = (
        "prod worker keeps dying\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/app/jobs/sync.py", line 88, in run\n'
        "    client.push(batch)\n"
        "KeyError: 'account_id'"
    )
    choice = score(text)
    assert choice.route == "coding"
    assert choice.reason == "stack trace"
    assert choice.confidence >= UNSURE_BELOW


def test_js_stack_frames_are_coding():
    text = "Uncaught ReferenceError: foo is not defined\n    at init (app.js:3:5)\n    at main (app.js:9:1)"
    assert score(text).route == "coding"


def test_code_block_is_coding():
    assert (
        score("why is this slow\n```sql\nselect * from t where x like '%a%'\n```").route == "coding"
    )


def test_repo_reference_is_coding():
    assert score("can someone re-run CI on widgets/backend#77").route == "coding"


def test_quick_capital_question_is_speed():
    choice = score("quick: capital of australia?")
    assert choice.route == "speed"
    assert choice.confidence >= UNSURE_BELOW


def test_percentage_arithmetic_is_speed():
    assert score("what's 20% of 80").route == "speed"


def test_unit_conversion_is_speed():
    assert score("5 miles in km?").route == "speed"


def test_csv_paste_with_growth_question_is_analysis():
    text = (
        "store,jan,feb,mar\n"
        "north,210,230,290\n"
        "south,180,175,190\n"
        "east,95,120,160\n"
        "which region grew fastest"
    )
    choice = score(text)
    assert choice.route == "analysis"
    assert choice.reason == "table/CSV data"


def test_metric_comparison_is_analysis():
    assert score(
        "compare march vs april retention: 41% vs 37%, and signups 900 vs 1,150"
    ).route == ("analysis")


def test_strategy_question_is_reasoning():
    choice = score(
        "we're thinking about expanding into germany next year, what should our go-to-market "
        "strategy look like and what risks should we plan for?"
    )
    assert choice.route == "reasoning"


def test_signal_free_text_defaults_to_reasoning_and_is_unsure():
    choice = score("hmm not sure how to feel about the offsite honestly, a lot going on lately")
    assert choice.route == "reasoning"
    assert choice.confidence < UNSURE_BELOW


def test_route_choice_shape():
    choice = score("convert 3 kg to lbs")
    assert isinstance(choice, RouteChoice)
    assert choice.route in ROUTES and choice.route != "fallback"
    assert 0.0 <= choice.confidence <= 1.0
    assert set(choice.scores) == {"reasoning", "coding", "speed", "analysis"}
    assert choice.reason


def test_japanese_cues():
    assert score("このエラーを直して: KeyError: 'id'").route == "coding"
    assert score("先月の売上を比較して分析してください").route == "analysis"


# --- explicit override --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "route", "rest"),
    [
        ("--model coding what is 2+2", "coding", "what is 2+2"),
        ("--model=analysis: hello", "analysis", "hello"),
        ("use the coding model: why is my build red", "coding", "why is my build red"),
        ("with the reasoning model, draft our hiring plan", "reasoning", "draft our hiring plan"),
        ("summarise this thread, use speed route", "speed", "summarise this thread"),
        ("what's our churn? please use the analysis model", "analysis", "what's our churn?"),
    ],
)
def test_explicit_override_detected_and_removed(text, route, rest):
    assert explicit_override(text) == (route, rest)


def test_explicit_override_after_leading_mention():
    route, rest = explicit_override("<@U0SOPHIA> --model speed capital of peru")
    assert route == "speed"
    assert rest == "<@U0SOPHIA> capital of peru"


@pytest.mark.parametrize(
    "text",
    [
        "how do I pick the right model for churn prediction?",
        "don't use the coding model for this",
        "--model gpt9 hello",
        "the speed of the reasoning step matters",
    ],
)
def test_explicit_override_not_triggered(text):
    assert explicit_override(text) == (None, text)


def test_score_honours_explicit_override():
    choice = score("<@U123> --model coding tell me a joke")
    assert choice.route == "coding"
    assert choice.confidence == 1.0
    assert choice.reason == "explicit: --model coding"
    assert score("use the analysis model: hi").reason == "explicit: asked for analysis"


# --- Slack artefacts ----------------------------------------------------------------------------


def test_mentions_links_and_emoji_are_stripped():
    raw = "<@U04ABC123> <!here> see <https://example.com/x|the doc> in <#C01|ops> :tada: :+1::skin-tone-2: &amp; more"
    assert clean_slack_text(raw) == "see the doc in #ops & more"


def test_bare_link_keeps_url_and_times_survive():
    assert (
        clean_slack_text("<https://example.com/a> at 10:30:45")
        == "https://example.com/a at 10:30:45"
    )


def test_mention_does_not_change_route():
    plain = "should we hire a second designer or a PM first?"
    assert score(f"<@U0SOPHIA> {plain} :thinking_face:").route == score(plain).route == "reasoning"


# --- model classifier helpers -------------------------------------------------------------------


def test_classifier_prompt_shape():
    messages = classifier_prompt("<@U1> compare Q1 and Q2 revenue")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert all(isinstance(m["content"], str) and m["content"] for m in messages)
    for word in ("reasoning", "coding", "speed", "analysis"):
        assert word in messages[0]["content"]
    assert "compare Q1 and Q2 revenue" in messages[1]["content"]
    assert "<@U1>" not in messages[1]["content"]


def test_classifier_prompt_truncates_long_text():
    assert len(classifier_prompt("x" * 50_000)[1]["content"]) < 2500


@pytest.mark.parametrize(
    ("answer", "route"),
    [
        ("Coding.", "coding"),
        (" analysis\n", "analysis"),
        ("SPEED", "speed"),
        ("**reasoning**", "reasoning"),
        ("`code`", "coding"),
        ("Route: analysis", "analysis"),
        ("I'd say coding.", "coding"),
        ("", None),
        ("banana", None),
        ("coding or analysis", "coding"),
        ("it could be speed or analysis", None),
        ("fallback", None),
    ],
)
def test_parse_classifier_answer(answer, route):
    assert parse_classifier_answer(answer) == route


# --- speed and aggregate accuracy floors ---------------------------------------------------------


def test_accuracy_floor_tuning_set():
    rows = _rows("routing_labelled.jsonl")
    assert len(rows) >= 110
    assert _accuracy(rows) >= 0.9


def test_accuracy_floor_holdout_set():
    rows = _rows("routing_holdout.jsonl")
    assert len(rows) >= 50
    assert _accuracy(rows) >= 0.85
