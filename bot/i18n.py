"""Sophia's own words (help, refusals, errors, approval messages) in English and Japanese.

One catalogue, looked up by key, so a translation is a table edit and a missing one is a test
failure rather than a string lost somewhere in the code. The model's answers follow the language
the person writes in (see `bot/core/prompts.py`); this covers the text Sophia writes herself.
Locales come from Slack (`users.info` with `include_locale`, e.g. "ja-JP"); anything without a
catalogue falls back to English.
"""

from __future__ import annotations

EN: dict[str, str] = {
    # /sophia help
    "help.unknown": "I don't know the subcommand `{name}`. Here is what I can do:\n",
    "help.header": "*Sophia* — ask me anything, or use a subcommand:",
    "help.later": "_(not available yet)_",
    "help.footer": "\nYou can also @mention me in a channel or send me a direct message.",
    "help.not_available": "`/sophia {name}` is not available in this version of Sophia yet.",
    "help.needs": " When it is, it will need {variables}.",
    "help.try_help": " Try `/sophia help` for what works today.",
    "command.failed": ":warning: That command failed on my side. Please try again.",
    "command.not_member": (
        "I'm not a member of this conversation, so I can't post here. Invite me with "
        "`/invite @Sophia`, or ask me in a direct message."
    ),
    "command.ask_what": "What should I answer? Example: `/sophia ask how do I …`",
    "channel.off": "I'm switched off in this channel (`/sophia config`); DM me instead.",
    # who may use Sophia
    "access.channel": (
        "I'm not enabled in this channel. Ask an admin (SOPHIA_ALLOWED_CHANNELS), or DM me."
    ),
    "access.user": (
        "You're not on the list of people who can use me (SOPHIA_ALLOWED_USERS); ask an admin."
    ),
    "access.guest": "Sorry, guests can't use me in this workspace.",
    # answering
    "answer.queued": "Queued — {ahead} ahead of you",
    "answer.next": "Queued — you're next",
    "answer.limit": (
        "I'm at my request limit ({limits}) and could not get to this within a minute. "
        "Please ask again in a little while."
    ),
    "answer.crashed": (
        ":warning: Something went wrong on my side while answering. Please try again; if it "
        "keeps happening, give an admin this reference: `{ref}`."
    ),
    # approvals
    "approval.needed": "Approval needed",
    "approval.approve": "Approve",
    "approval.reject": "Reject",
    "approval.requested_by": "Requested by {user} · expires {when} · `{id}`",
    "approval.no_approvers": (
        "Nobody can approve yet: an admin must list approvers in `SOPHIA_APPROVERS`."
    ),
    "approval.refused.NotAnApprover": (
        "You are not on the approvers list (SOPHIA_APPROVERS), so you cannot decide this."
    ),
    "approval.refused.SelfApproval": (
        "You asked for this action, so someone else has to approve it "
        "(SOPHIA_ALLOW_SELF_APPROVAL is off)."
    ),
    "approval.refused.ApprovalExpired": "This request has expired; ask again for a fresh one.",
    "approval.refused.AlreadyDecided": "This request was already decided.",
    "approval.refused.ApprovalNotFound": "That approval request does not exist.",
    # subcommand summaries in help (keyed by subcommand name; the English lives with each one)
}

JA: dict[str, str] = {
    "help.unknown": "`{name}` というサブコマンドはありません。使えるコマンドはこちらです:\n",
    "help.header": "*Sophia* — 何でも聞いてください。サブコマンドも使えます:",
    "help.later": "_(まだ使えません)_",
    "help.footer": "\nチャンネルで @メンション するか、DM でも話しかけられます。",
    "help.not_available": "`/sophia {name}` はこのバージョンの Sophia ではまだ使えません。",
    "help.needs": " 使えるようになったら {variables} の設定が必要です。",
    "help.try_help": " 今使えるコマンドは `/sophia help` で確認できます。",
    "command.failed": ":warning: コマンドの実行中にこちら側で問題が起きました。もう一度お試しください。",
    "command.not_member": (
        "この会話のメンバーではないため、ここには投稿できません。`/invite @Sophia` で招待するか、"
        "DM で聞いてください。"
    ),
    "command.ask_what": "何に答えればよいですか? 例: `/sophia ask …のやり方は?`",
    "channel.off": "このチャンネルでは私はオフになっています(`/sophia config`)。DM でどうぞ。",
    "access.channel": (
        "このチャンネルでは有効になっていません。管理者に依頼する(SOPHIA_ALLOWED_CHANNELS)か、"
        "DM でどうぞ。"
    ),
    "access.user": "私を使える人の一覧(SOPHIA_ALLOWED_USERS)に入っていません。管理者に相談してください。",
    "access.guest": "申し訳ありませんが、このワークスペースではゲストは私を使えません。",
    "answer.queued": "順番待ち — あと {ahead} 件",
    "answer.next": "順番待ち — 次があなたの番です",
    "answer.limit": (
        "リクエストの上限({limits})に達していて、1 分以内に対応できませんでした。"
        "少し時間をおいてもう一度聞いてください。"
    ),
    "answer.crashed": (
        ":warning: 回答中にこちら側で問題が起きました。もう一度お試しください。"
        "繰り返し起きる場合は、この参照番号を管理者に伝えてください: `{ref}`。"
    ),
    "approval.needed": "承認が必要です",
    "approval.approve": "承認",
    "approval.reject": "却下",
    "approval.requested_by": "依頼者 {user} · 期限 {when} · `{id}`",
    "approval.no_approvers": (
        "まだ誰も承認できません。管理者が `SOPHIA_APPROVERS` に承認者を登録する必要があります。"
    ),
    "approval.refused.NotAnApprover": (
        "承認者の一覧(SOPHIA_APPROVERS)に入っていないため、この依頼は判断できません。"
    ),
    "approval.refused.SelfApproval": (
        "この操作を依頼したのはあなたなので、別の人が承認する必要があります"
        "(SOPHIA_ALLOW_SELF_APPROVAL がオフです)。"
    ),
    "approval.refused.ApprovalExpired": "この依頼は期限切れです。もう一度依頼してください。",
    "approval.refused.AlreadyDecided": "この依頼はすでに判断済みです。",
    "approval.refused.ApprovalNotFound": "その承認依頼は見つかりません。",
    # help summaries per subcommand
    "sub.help": "この一覧を表示",
    "sub.models": "モデルのルート、接続できるか、今日の利用額",
    "sub.ask": "質問する(モデルのルートも選べます)",
    "sub.usage": "今日のあなたのリクエスト数・トークン・費用(管理者は全員分)",
    "sub.approvals": "あなたの承認待ちの依頼",
    "sub.audit": "最近の承認の記録(承認者向け)",
    "sub.research": "Web を調べて出典付きで答える",
    "sub.memory search": "Sophia が覚えていることを検索",
    "sub.memory forget": "あなたについて覚えていることをすべて忘れる",
    "sub.index": "GitHub リポジトリを質問用にインデックスする",
    "sub.pr open": "変更を加えたプルリクエストを作る",
    "sub.pr merge": "プルリクエストのマージを依頼する(承認が必要)",
    "sub.deploy": "Fly.io アプリのデプロイを依頼する(承認が必要)",
    "sub.fly status": "Fly.io アプリのマシンとヘルスチェック",
    "sub.fly secrets": "Fly.io アプリのシークレット名の一覧",
    "sub.fly scale": "Fly.io アプリのスケール変更を依頼する(承認が必要)",
    "sub.gpu list": "Lambda の GPU の種類・料金・稼働中のインスタンス",
    "sub.gpu launch": "GPU インスタンスの起動を依頼する(承認が必要)",
    "sub.gpu terminate": "GPU インスタンスの停止を依頼する(承認が必要)",
    "sub.gpu run": "GPU インスタンスでのコマンド実行を依頼する(承認が必要)",
    "sub.account": "CRM・商談・Slack から会社の概要をまとめる",
    "sub.mcp": "接続中の MCP サーバーとツールの一覧",
    "sub.jobs": "実行中・最近のジョブ",
    "sub.config": "このチャンネルの設定(チャンネル管理者と管理者)",
}

CATALOGUES: dict[str, dict[str, str]] = {"en": EN, "ja": JA}


def language(locale: str | None) -> str:
    """The catalogue for a Slack locale ("ja-JP" → "ja"); English when there is none."""
    code = (locale or "en").split("-")[0].split("_")[0].lower()
    return code if code in CATALOGUES else "en"


def t(key: str, lang: str = "en", **values: object) -> str:
    """The text for `key` in `lang` (English when that language lacks it), filled in."""
    text = CATALOGUES.get(lang, EN).get(key) or EN[key]
    return text.format(**values) if values else text


def summary(name: str, english: str, lang: str = "en") -> str:
    """A subcommand's one-line summary in `lang`; its own English line otherwise."""
    return CATALOGUES.get(lang, EN).get(f"sub.{name}") or english
