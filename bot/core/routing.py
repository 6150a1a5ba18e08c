"""Fast, model-free request routing: weighted text signals pick one of the Sophia model routes."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

ROUTES = ("reasoning", "coding", "speed", "analysis", "fallback")
CLASSIFIABLE = ROUTES[:4]  # fallback is a provider-chain last resort, never a classifier pick

# Below this softmax confidence the caller should ask the speed model for a one-word label.
# No signal at all gives ~0.47 and a close call (margin under ~1 point) 0.55-0.64; a single clear
# cue reaches 0.70+, so 0.65 sends only the genuinely undecided ~7% of requests to the model.
UNSURE_BELOW = 0.65


@dataclass(frozen=True)
class RouteChoice:
    """The scorer's decision: route, confidence in 0..1, a short reason and per-route raw scores."""

    route: str
    confidence: float
    reason: str
    scores: dict[str, float] = field(default_factory=dict)


# --- Slack clean-up -----------------------------------------------------------------------------

_MENTION = re.compile(r"<[@!][^>]*>")
_CHANNEL = re.compile(r"<#[A-Z0-9]+\|([^>]*)>")
_LABELLED_LINK = re.compile(r"<(?:https?|mailto):[^|>]*\|([^>]*)>")
_BARE_LINK = re.compile(r"<((?:https?|mailto):[^>]*)>")
_EMOJI = re.compile(r":(?<![\w:]:)[a-z+-][a-z0-9_+'-]*:(?::skin-tone-\d:)?(?![\w:])")


def clean_slack_text(text: str) -> str:
    """Strip user/group mentions and emoji, reduce links and channels to their label, unescape HTML."""
    text = _MENTION.sub(" ", text)
    text = _CHANNEL.sub(r"#\1", text)
    text = _LABELLED_LINK.sub(r"\1", text)
    text = _BARE_LINK.sub(r"\1", text)
    text = _EMOJI.sub(" ", text)
    text = html.unescape(text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


# --- Explicit override ----------------------------------------------------------------------------

_ALIASES = {
    "reasoning": "reasoning", "thinking": "reasoning",
    "coding": "coding", "code": "coding",
    "speed": "speed", "fast": "speed", "quick": "speed",
    "analysis": "analysis", "analytics": "analysis", "analyst": "analysis",
    "fallback": "fallback",
}  # fmt: skip
_ALIAS_RX = "|".join(sorted(_ALIASES, key=len, reverse=True))
_FLAG = re.compile(r"^((?:\s*<@[^>]*>)*)\s*--model[=\s]+(\w+)\b[\s:,]*", re.I)
_WORDS = re.compile(
    rf"(?<![\w-])(?:please\s+)?(?:use|using|with|via|try|ask|route\s+(?:this\s+)?to|send\s+(?:this\s+)?to)"
    rf"\s+(?:the\s+|your\s+)?({_ALIAS_RX})\s+(?:model|route|mode)\b(?:\s+(?:for\s+this|please))?",
    re.I,
)
_NEGATED = re.compile(r"(?:don'?t|do\s+not|not|never|no\s+need\s+to)\s*$", re.I)


def explicit_override(text: str) -> tuple[str | None, str]:
    """Return the route asked for in words or by a leading --model flag, and the text without it."""
    low = text.lower()
    if "--model" not in low and "mode" not in low and "route" not in low:
        return None, text
    m = _FLAG.match(text)
    if m and m.group(2).lower() in _ALIASES:
        return _ALIASES[m.group(2).lower()], (m.group(1) + " " + text[m.end() :]).strip()
    for m in _WORDS.finditer(text):
        if _NEGATED.search(text[: m.start()]):
            continue
        before = re.sub(r"[\s,;:(-]+$", "", text[: m.start()])
        after = re.sub(r"^[\s,;:.)!-]+", "", text[m.end() :])
        rest = f"{before} {after}".strip() if before and after else (before or after)
        return _ALIASES[m.group(1).lower()], rest.strip()
    return None, text


# --- Signals --------------------------------------------------------------------------------------
# Each signal is (route, weight, label, matcher, cap): weight counts once per distinct hit, up to cap.
# Matchers see (raw, lowercased, token set), both texts wrapped in "\n" so line starts are literal.
# Patterns start with a literal or small charset (never \b, ^ or \w) and keywords are set lookups:
# Python's re can then skip ahead instead of trying every position, which keeps 2 KB under 1 ms.

_Matcher = Callable[[str, str, set[str]], set[str]]
_TOKEN = re.compile(r"[a-z0-9][a-z0-9+#_-]*")
_HEAD = 200  # speed cues describe short questions, so they are only looked for near the start


def _rx(*patterns: str, raw: bool = False, head: bool = False, gate: str = "") -> _Matcher:
    """Match regexes on the lowercased (or raw) text, skipped unless a '|'-separated gate occurs."""
    rxs = [re.compile(p) for p in patterns]
    gates = tuple(g for g in gate.split("|") if g)

    def match(r: str, low: str, toks: set[str]) -> set[str]:
        if gates and not any(g in low for g in gates):
            return set()
        text = r if raw else low
        text = text[:_HEAD] if head else text
        return {m.group(0) for rx in rxs for m in rx.finditer(text)}

    return match


def _kw(words: str, *extra: _Matcher) -> _Matcher:
    """Match whole lowercase tokens, plus any extra matchers."""
    exact = frozenset(words.split())

    def match(raw: str, low: str, toks: set[str]) -> set[str]:
        hits = toks & exact
        for m in extra:
            hits |= m(raw, low, toks)
        return hits

    return match


_CODE_EXT = r"py|pyi|ipynb|js|mjs|cjs|jsx|ts|tsx|go|rs|java|kt|rb|php|cs|cpp|cc|c|h|hpp|swift|scala|sql|sh|bash|zsh|ya?ml|json|toml|ini|cfg|env|tf|lock|gradle|vue|svelte|css|scss|html|txt|dockerfile"
_UNITS = r"km|kms|kilometers?|miles?|mi|kg|kgs|kilos?|lbs?|pounds?|oz|ounces?|g|grams?|ft|feet|foot|inch(?:es)?|in|cm|mm|m|meters?|metres?|yards?|l|liters?|litres?|gallons?|mph|kph|°?[fc]|celsius|fahrenheit|usd|eur|gbp|jpy|yen|cad|aud|dollars?|euros?|bucks"

_SIGNALS: list[tuple[str, float, str, _Matcher, float]] = [
    # coding: pasted artefacts are near-certain, so they outweigh any data words around them
    ("coding", 5.0, "code block", _rx(r"```", raw=True), 5.0),
    ("coding", 6.0, "stack trace", _rx(r"Traceback \(most recent call last\)|\n[ \t]*File \"[^\"\n]+\", line \d+|\n[ \t]*at [\w.$<>/]+ ?\([^\n]*:\d+|\ngoroutine \d+ \[|\npanic: ", raw=True), 6.0),
    ("coding", 3.0, "error message", _kw("", _rx(r"[A-Z][A-Za-z]*(?:Error|Exception)\b|\n[ \t]*(?:ERROR|FATAL|fatal|error|panic):|CrashLoopBackOff|segfault", raw=True, gate="error|exception|fatal|panic|crashloop|segfault"), _rx(r"E(?<![A-Za-z]E)[A-Z]{4,}\b", raw=True)), 4.0),
    ("coding", 3.0, "CLI error", _rx(r"exit(?:ed with)? (?:code|status) \d+", "permission denied", "connection refused", "cannot find module", r"not (?:defined|found)\b", "no such file", "is not recognized", r"(?:get|post|put|patch|delete) (?:request|/)", "status code", r"returns? [45]\d\d\b", "unresolved import", r"undefined (?:reference|method|variable)"), 3.0),
    ("coding", 4.0, "diff", _rx(r"\n@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@|\ndiff --git ", raw=True), 4.0),
    ("coding", 3.5, "file path", _rx(rf"\.(?<=\w\.)(?:{_CODE_EXT})\b(?!\.\w)|/(?<![\w/]/)[\w.-]+/[\w./-]*"), 3.5),
    ("coding", 4.0, "repo reference", _kw("repo repos repository codebase", _rx(r"/(?<=\w/)[\w.-]+#\d+\b|github\.com/|gitlab\.com/|pull request|merge request"), _rx(r"[PM]R(?<![A-Za-z0-9][PM]R)s?\b", raw=True)), 4.0),
    ("coding", 1.5, "code syntax", _kw("lambda null undefined", _rx(r"\n[ \t]*(?:def|class|import|from \S+ import|fn|func|const|let|var|public|private|return|for .+ in |if .+:|SELECT|INSERT|UPDATE|DELETE|CREATE)\b|\.(?<=\w\.)\w+\(|=>|==|!=|&&|\|\||;[ \t]*\n|\$\{?[A-Za-z_]\w*|\{\s*\w+:|None(?<![A-Za-z]None)\b|\(\)(?<=\w\(\))|SELECT\b.+\bFROM\b|GROUP BY\b|WHERE\b", raw=True)), 4.5),
    ("coding", 1.5, "indented code", _rx(r"\n(?: {2,}|\t)\S[^\n]*\n(?: {2,}|\t)\S", raw=True), 1.5),
    ("coding", 2.0, "inline code", _rx(r"`[^`\n]+`", raw=True), 2.0),
    ("coding", 3.0, "programming task", _kw("regex regexp one-liner oneliner refactor refactoring refactored debug debugging debugger stacktrace compile compiler compiling linter segfault cors",
        _rx("regular expression", r"sql (?:query|statement)", "one liner", r"unit tests?", r"type hints?", "stack trace", "borrow checker", r"localhost:\d+"),
        _rx(r"(?:fix|debug|optimi[sz]e|refactor|review) (?:this|my|the|our) (?:\w+ )?(?:function|method|bug|code|test|query|script|class|endpoint|pr|regex|build)\b", gate="fix|debug|optimi|refactor|review"),
        _rx(r"(?:pip|npm|yarn|brew|apt-get|apt|gem|cargo|git|docker|kubectl|terraform|helm) (?:install|add|run|build|plan|apply|init|get|push|pull|commit|rebase|merge|logs?|exec|describe|test|compose|diff|checkout|reset|revert)\b", gate="pip|npm|yarn|brew|apt|gem|cargo|git|docker|kubectl|terraform|helm")), 3.0),
    ("coding", 2.5, "dev tool", _kw("npm npx yarn pnpm pip pip3 pipenv poetry conda docker dockerfile docker-compose kubectl k8s kubernetes helm terraform ansible git github gitlab jest pytest mocha webpack vite eslint nginx redis ssh curl grep cron cronjob crontab virtualenv venv stdout stderr oom"), 5.0),
    ("coding", 1.0, "dev vocabulary", _kw("cli sdk api apis endpoint endpoints function functions method methods variable variables script scripts deploy deploys deployed deploying deployment deployments build commit commits branch merge rebase container containers pod pods runtime async asyncio asynchronous asynchronously hook hooks component components dependency dependencies module modules package packages library framework query schema logic file files bug bugs backend frontend server database db postgres postgresql mysql sqlite mongo mongodb mongoose bash shell compose migration migrations install installs installed installing installation config configs configure configured configuration"), 3.0),
    ("coding", 2.0, "language", _kw("python javascript typescript node nodejs golang rust java kotlin ruby rails php c++ c# swift scala sql html css react vue django flask fastapi pandas numpy asyncio", _rx(r"(?:in|with|using) go\b", gate=" go")), 4.0),
    ("coding", 3.0, "code (ja)", _rx(r"コード|エラー|バグ|関数|スクリプト|デプロイ|プログラム|実装"), 3.0),
    # speed: short factual shapes; deliberately modest so any real payload outranks them
    ("speed", 2.5, "quick question", _kw("qq", _rx(r"\A\s*quick\b"), _rx(r"quick (?:q|one|question)\b|yes or no\b|tl;?dr\b", head=True)), 2.5),
    ("speed", 3.0, "greeting", _rx(r"\A\s*(?:hi|hey|hello|yo|morning|good (?:morning|afternoon|evening)|thanks?(?: you)?|thx|ty|cheers|gm)\b[\s!.,]*(?:sophia|there|all|team)?[\s!.]*\Z"), 3.0),
    ("speed", 2.5, "factual lookup", _kw("", _rx(r"\A\s*(?:who (?:is|was|wrote|founded|invented|owns)|when (?:is|was|did|does)|what (?:year|time|day|date|month)|how (?:many|much|long|old|far|tall)|where is|capital of|define|definition of|meaning of|synonym|antonym|how do you (?:spell|pronounce)|spell)\b",
        r"\A\s*what(?:'?s| is) the \w+(?: \w+)? of\b", r"\A\s*(?:what|who)(?:'?s| is| are) (?:an? |the )?[\w' -]{1,30}\?*\s*\Z"),
        _rx(r"capital of\b|stand for\b|what does '?\S+'? mean\b", head=True)), 3.5),
    ("speed", 3.0, "conversion", _kw("", _rx(r"\A\s*convert\b"), _rx(rf"\d[\d.,]*\s?(?:{_UNITS})\s+(?:in|to|into)\s+(?:{_UNITS})\b| (?:{_UNITS}) to (?:{_UNITS})\b", head=True)), 3.0),
    ("speed", 3.0, "arithmetic", _kw("", _rx(r"\A\s*(?:what(?:'?s| is) )?\d[\d.,]*\s*[-+*/x×÷^]\s*\d[\d.,]*\s*\??\s*\Z"), _rx(r"\d(?:\.\d+)?\s?% (?:of|off)\b", head=True)), 3.0),
    ("speed", 2.0, "time/date", _kw("timezone today tomorrow yesterday pst ast utc gmt cet", _rx(r"what time|time in\b|time zone|right now|public holiday|bank holiday|leap year|days? until|day of the week", head=True)), 2.0),
    ("speed", 3.0, "quick lookup (ja)", _rx(r"何曜日|何時|今何|時間は|とは[？?]?\s*\Z|いくつ|何日"), 3.0),
    # analysis: vocabulary of metrics; numbers and tables are scored separately below
    ("analysis", 2.5, "analysis request", _kw("analyse analyze analysed analyzed analysing analyzing analysis analyses analytics analyst compare compared compares comparing comparison comparisons correlation correlations correlate correlated trend trends trending trendline statistics statistical statistically significant significance significantly regression distribution forecast forecasts forecasting benchmark benchmarks benchmarking outlier outliers breakdown", _rx(r"break down|a/b test")), 5.0),
    ("analysis", 1.2, "data words", _kw("data dataset metric metrics kpi kpis revenue churn retention cohort cohorts conversion conversions funnel growth grew average avg mean median percent percentage rate rates ratio margin cost costs spend bill budget roi mrr arr nrr ltv cac nps dau mau wau yoy mom wow q1 q2 q3 q4 quarter quarters quarterly segment segments sales quota survey responses velocity latency csv spreadsheet table numbers stats dashboard increase decrease dropped drop-off dropoff visitors signup signups leads deal deals tickets p50 p75 p90 p95 p99", _rx(r"year over year")), 4.8),
    ("analysis", 3.0, "data (ja)", _rx(r"分析|比較|売上|データ|推移|平均|割合|傾向|集計"), 4.0),
    # reasoning: the default route; cues only need to beat weak incidental matches
    ("reasoning", 1.5, "advice/planning", _kw("advice strategy strategies strategic plan planning roadmap framework prioritise prioritize prioritised prioritized prioritisation prioritization risk risks decide decided deciding thoughts ideas brainstorm tradeoff tradeoffs", _rx(r"should(?<!how should) (?:we|i)\b", r"how (?:should|would) (?:we|i|you)\b", r"what should\b(?! (?:we|i)\b)", r"what would you\b", r"is it worth\b", r"trade-offs?", "pros and cons", "for and against", "best way", "reasonable way", r"help me (?:think|decide|prepare)")), 3.0),
    ("reasoning", 1.5, "writing", _kw("write draft rewrite reword polish proofread summarise summarize outline announcement email post note agenda paragraph tone sound sounds", _rx(r"job description")), 3.0),
    ("reasoning", 1.5, "explanation", _kw("explain", _rx(r"\A\s*(?:why|what(?:'?s| is| are) the difference|what makes)\b"), _rx(r"like i'?m\b", "in plain english")), 1.5),
    ("reasoning", 2.5, "advice (ja)", _rx(r"アドバイス|考えて|計画|戦略|書き方|どうすれば|相談"), 2.5),
]  # fmt: skip

_NUMBER = re.compile(r"\d(?<![\w.]\d)[\d,]*(?:\.\d+)?(?:[%kKmMbB]|ms|h)?(?![\w.])")
_PERCENT = re.compile(r"\d\s?%")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
_LATIN_WORD = re.compile(r"[A-Za-z0-9_'$%.,:/-]+")
_NUMERIC_CELL = re.compile(r"(?:^|[,|\t])\s*[-+$]?\d[\d.]*[%kKmM]?\s*(?=[,|\t]|$)")
_LABEL_NUMBER = re.compile(r"\D \d[\d,.]*%?$")


def _table_lines(text: str) -> int:
    """Count lines that look like CSV / pipe-table / 'label number' rows."""
    if "\n" not in text:
        return 0
    n = 0
    for line in text.splitlines():
        line = line.strip().strip("|")
        seps = max(line.count(","), line.count("|"), line.count("\t"))
        if (seps >= 2 and _NUMERIC_CELL.search(line)) or (seps < 2 and _LABEL_NUMBER.search(line)):
            n += 1
            if n == 6:  # the table bonus saturates at six rows
                break
    return n


def _signals(text: str) -> list[tuple[str, float, str]]:
    """Return every fired (route, weight, label) for already-cleaned text."""
    raw, low = f"\n{text}\n", f"\n{text.lower()}\n"
    toks = set(_TOKEN.findall(low))
    fired: list[tuple[str, float, str]] = []
    for route, weight, label, match, cap in _SIGNALS:
        hits = match(raw, low, toks)
        if hits:
            fired.append((route, min(cap, weight * len(hits)), label))
    # only the first 1000 chars are counted: every threshold below is reached well before that
    words = len(_LATIN_WORD.findall(text[:1000])) + (
        0 if text.isascii() else len(_CJK.findall(text)) / 2.5
    )
    numbers, percents, rows = (
        len(_NUMBER.findall(text)),
        len(_PERCENT.findall(text)),
        _table_lines(text),
    )
    if rows >= 2:
        fired.append(("analysis", 3.0 + min(rows, 6) * 0.5, "table/CSV data"))
    if numbers >= 3:
        # three or more figures in one message is the strongest cheap hint that someone wants numbers read
        fired.append(("analysis", min(4.0, 1.0 + (numbers - 3) * 0.4), "numbers"))
    if percents >= 2:
        fired.append(("analysis", min(2.5, percents * 0.6), "percentages"))
    if words <= 6:
        fired.append(("speed", 2.0, "short question"))
    elif words <= 10:
        fired.append(("speed", 1.0, "short question"))
    elif words >= 20:
        fired.append(("reasoning", 1.0, "long request"))
    return fired


def _softmax(scores: dict[str, float]) -> dict[str, float]:
    """Normalise raw scores to probabilities."""
    top = max(scores.values())
    exps = {k: math.exp(v - top) for k, v in scores.items()}
    total = sum(exps.values())
    return {k: v / total for k, v in exps.items()}


def score(text: str) -> RouteChoice:
    """Pick a route from weighted text signals (an explicit user request wins with confidence 1)."""
    cleaned_in = clean_slack_text(text)
    route, rest = explicit_override(cleaned_in)
    cleaned = rest if route else cleaned_in
    scores = dict.fromkeys(CLASSIFIABLE, 0.0)
    scores["reasoning"] = 1.0  # default route: wins ties and signal-free messages
    best_label: dict[str, tuple[float, str]] = {}
    for r, weight, label in _signals(cleaned):
        scores[r] += weight
        if weight > best_label.get(r, (0.0, ""))[0]:
            best_label[r] = (weight, label)
    scores = {k: round(v, 3) for k, v in scores.items()}
    if route:
        how = "--model" if cleaned_in.lstrip().lower().startswith("--model") else "asked for"
        return RouteChoice(route, 1.0, f"explicit: {how} {route}", scores)
    winner = max(CLASSIFIABLE, key=lambda k: scores[k])
    confidence = round(_softmax(scores)[winner], 3)
    reason = best_label.get(winner, (0.0, "default: no strong signal"))[1]
    return RouteChoice(winner, confidence, reason, scores)


# --- Model classifier helpers ---------------------------------------------------------------------

CLASSIFIER_SYSTEM = (
    "You route Slack requests to a model. Reply with exactly one lowercase word and nothing else:\n"
    "coding - code, file paths, diffs, stack traces, errors, SQL, regex, CLI, repos, dev tools\n"
    "analysis - numbers, metrics, tables/CSV, comparisons, trends, breakdowns of data\n"
    "speed - short factual lookups, conversions, definitions, time/date, greetings, yes/no\n"
    "reasoning - everything else: advice, planning, writing, explanations, decisions"
)


def classifier_prompt(text: str) -> list[dict]:
    """Build chat messages asking a small model for exactly one of reasoning|coding|speed|analysis."""
    body = clean_slack_text(text)
    if len(body) > 2000:
        body = body[:1500] + "\n…\n" + body[-400:]
    return [
        {"role": "system", "content": CLASSIFIER_SYSTEM},
        {"role": "user", "content": f"Request:\n<<<\n{body}\n>>>\nOne word:"},
    ]


_ANSWER_WORD = re.compile(rf"\b({_ALIAS_RX})\b", re.I)


def parse_classifier_answer(answer: str) -> str | None:
    """Tolerantly map a model's answer to a classifiable route, or None if it is unclear."""
    if not answer:
        return None
    found = [_ALIASES[w.lower()] for w in _ANSWER_WORD.findall(answer)]
    found = [r for r in found if r in CLASSIFIABLE]
    first = re.match(r"[\W_]*(\w+)", answer)
    if first and _ALIASES.get(first.group(1).lower()) in CLASSIFIABLE:
        return _ALIASES[first.group(1).lower()]
    return found[0] if len(set(found)) == 1 else None
