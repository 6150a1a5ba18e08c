"""Sophia's own words follow the person's Slack locale: Japanese complete, others in English."""

from __future__ import annotations

import pytest

from bot.i18n import EN, JA, language, t
from tests import test_approvals
from tests.test_approvals import APPROVER, REQUESTER, click
from tests.test_slash_command import ephemeral

pytestmark = pytest.mark.filterwarnings("ignore")
github, app = test_approvals.github, test_approvals.app  # Sophia with a fake GitHub and approvers


def test_japanese_catalogue_is_complete_and_fills_the_same_blanks():
    missing = sorted(set(EN) - set(JA))
    assert not missing, f"Japanese lacks {missing}"
    for key, english in EN.items():
        blanks = sorted(part.split("}")[0] for part in english.split("{")[1:])
        japanese = sorted(part.split("}")[0] for part in JA[key].split("{")[1:])
        assert blanks == japanese, key


def test_locales_fall_back_to_english():
    assert language("ja-JP") == "ja"
    assert language("fr-FR") == language(None) == language("") == "en"
    assert t("help.header", "fr") == EN["help.header"]


async def test_help_follows_the_users_locale(sophia, slack):
    slack.set_user("U0JA", locale="ja-JP")
    japanese = await ephemeral(slack, "help", user_id="U0JA")
    assert "サブコマンド" in japanese
    assert "`/sophia pr merge <owner/repo>#<n>` — プルリクエストのマージを依頼する" in japanese
    unknown = await ephemeral(slack, "frobnicate", user_id="U0JA")
    assert "`frobnicate` というサブコマンドはありません" in unknown
    english = await ephemeral(slack, "help", user_id="U0EN")  # the fake's default locale: en-US
    assert "ask me anything" in english and "サブコマンド" not in english


async def test_approval_request_and_refusal_follow_each_persons_locale(app, slack):
    slack.set_user(REQUESTER, locale="ja-JP")
    await slack.push_slash_command("pr merge acme/site#1", user_id=REQUESTER)
    [post] = await slack.wait_for_call("chat.postMessage")
    assert post.args["text"].startswith("承認が必要です")
    buttons = next(b for b in post.args["blocks"] if b["type"] == "actions")["elements"]
    assert [b["text"]["text"] for b in buttons] == ["承認", "却下"]
    approval_id, ts = buttons[0]["value"], post.response["ts"]
    # The requester (Japanese, not an approver) is told why the click is refused, in Japanese.
    await click(slack, approval_id, ts, user=REQUESTER)
    [refusal] = await slack.wait_for_call("chat.postEphemeral")
    assert "承認者の一覧(SOPHIA_APPROVERS)に入っていない" in refusal.args["text"]
    # An English-speaking approver still approves as before.
    await click(slack, approval_id, ts, user=APPROVER, action_ts="2.2")
    await slack.wait_for_call("chat.update", lambda c: "Done" in c.args.get("text", ""))
