"""The `/incident …` grammar, an outside contract (people and scripts type it; the README
lists it): one parser for Slack and the terminal."""

from __future__ import annotations

import unicodedata
from dataclasses import fields
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bot.commands import MAX_TEXT, USAGE, Command, Mention, parse
from bot.errors import ParseError
from bot.messages import catalog

# --- each verb ---------------------------------------------------------------


def test_empty_text_opens_the_start_modal() -> None:
    assert parse("") == Command("open")
    assert parse("   ") == Command("open")
    assert parse("/incident") == Command("open")


def test_start_with_severity_and_title() -> None:
    cmd = parse("start service-outage sev1 Checkout is failing")
    assert (cmd.verb, cmd.runbook, cmd.severity, cmd.title) == (
        "start",
        "service-outage",
        "sev1",
        "Checkout is failing",
    )


def test_start_without_severity_keeps_the_whole_title() -> None:
    cmd = parse("start service-outage Checkout is failing")
    assert (cmd.runbook, cmd.severity, cmd.title) == ("service-outage", None, "Checkout is failing")


def test_start_title_keeps_inner_spaces_and_case() -> None:
    cmd = parse("start Service-Outage SEV2 Checkout  is   FAILING in eu-west")
    assert cmd.runbook == "service-outage"
    assert cmd.severity == "sev2"
    assert cmd.title == "Checkout  is   FAILING in eu-west"


def test_start_title_may_look_like_a_word_starting_with_sev() -> None:
    cmd = parse("start pr-crisis severe backlash online")
    assert (cmd.severity, cmd.title) == (None, "severe backlash online")


@pytest.mark.parametrize("verb", ["assign", "handoff"])
@pytest.mark.parametrize(
    ("typed", "mention"),
    [
        ("<@U123>", Mention("U123", None)),
        ("<@U123|ana>", Mention("U123", "ana")),
        ("<@W0ABC9>", Mention("W0ABC9", None)),
        ("@ana", Mention("ana", "ana")),
        ("@ana.lee-2", Mention("ana.lee-2", "ana.lee-2")),
    ],
)
def test_assign_and_handoff_take_a_role_and_a_mention(
    verb: str, typed: str, mention: Mention
) -> None:
    cmd = parse(f"{verb} Tech-Lead {typed}")
    assert (cmd.verb, cmd.role, cmd.user) == (verb, "tech-lead", mention)


def test_assign_accepts_the_mention_before_the_role() -> None:
    cmd = parse("assign @ana commander")
    assert (cmd.role, cmd.user) == ("commander", Mention("ana", "ana"))


def test_accept_takes_nothing() -> None:
    assert parse("accept") == Command("accept")


@pytest.mark.parametrize("verb", ["update", "note", "summary", "impact", "cause"])
def test_text_verbs_keep_their_text(verb: str) -> None:
    cmd = parse(f"{verb} DB failover done;  error rate back to 0.1%\nnext: watch")
    assert cmd.verb == verb
    assert cmd.text == "DB failover done;  error rate back to 0.1%\nnext: watch"


def test_done_takes_one_step() -> None:
    cmd = parse("done 1.2")
    assert (cmd.verb, cmd.step) == ("done", "1.2")


def test_skip_takes_a_step_and_a_reason() -> None:
    cmd = parse("skip 2.3 not needed, config only")
    assert (cmd.verb, cmd.step, cmd.text) == ("skip", "2.3", "not needed, config only")


def test_next_takes_nothing() -> None:
    assert parse("next") == Command("next")


@pytest.mark.parametrize("typed", ["sev1", "SEV3", "Sev4"])
def test_sev_lowercases_the_severity(typed: str) -> None:
    assert parse(f"sev {typed}") == Command("sev", severity=typed.lower())


@pytest.mark.parametrize("verb", ["mitigated", "resolved", "close"])
def test_milestone_verbs_take_nothing(verb: str) -> None:
    assert parse(verb) == Command(verb)


@pytest.mark.parametrize(
    "text",
    [
        "action Add a canary check @ana due 2026-02-01",
        "action Add a canary check due 2026-02-01 @ana",
    ],
)
def test_action_takes_owner_and_due_in_either_order(text: str) -> None:
    cmd = parse(text)
    assert cmd.verb == "action"
    assert cmd.text == "Add a canary check"
    assert cmd.owner == Mention("ana", "ana")
    assert cmd.due == date(2026, 2, 1)


def test_action_with_slack_mention_owner() -> None:
    cmd = parse("action Rotate keys <@U42|bo> DUE 2026-03-31")
    assert (cmd.text, cmd.owner, cmd.due) == (
        "Rotate keys",
        Mention("U42", "bo"),
        date(2026, 3, 31),
    )


def test_action_without_owner_or_due() -> None:
    cmd = parse("action Add a canary check")
    assert (cmd.text, cmd.owner, cmd.due) == ("Add a canary check", None, None)


def test_action_with_only_a_due_date() -> None:
    cmd = parse("action Write runbook for DNS due 2026-01-20")
    assert (cmd.text, cmd.owner, cmd.due) == ("Write runbook for DNS", None, date(2026, 1, 20))


def test_action_takes_priority_and_tracker_link_in_any_order() -> None:
    cmd = parse("action Pin the pool p1 https://tracker.example.com/OPS-1 @eli due 2026-01-22")
    assert (cmd.text, cmd.owner, cmd.due, cmd.priority, cmd.link) == (
        "Pin the pool",
        Mention("eli", "eli"),
        date(2026, 1, 22),
        "p1",
        "https://tracker.example.com/OPS-1",
    )
    assert parse("action Pin the pool P3").priority == "p3"


@pytest.mark.parametrize(
    ("text", "key", "given"),
    [
        ("action Tune pool @responder due next friday", "bad_date", "next friday"),
        ("action Tune pool due friday @responder", "bad_date", "friday"),
        ("action Tune pool due in 2 days", "bad_date", "in 2"),
        ("action Tune pool due", "bad_date", "due"),
        ("action Tune pool due 2026-01-22 soon", "option_in_text", "due 2026-01-22"),
        ("action Ask @ben to tune the pool", "owner_in_text", "@ben"),
        ("action Tune pool @ana @ben", "owner_in_text", "@ana"),
        ("action Tune pool <@U1", "owner_in_text", "<@U1"),
        ("action Tune pool p4", "bad_priority", "p4"),
        ("action Tune pool ftp://files.example.com/pool", "bad_link", "ftp://"),
        ("action Tune pool https://", "bad_link", "https://"),
        ("action Tune pool http://[::1", "bad_link", "http://[::1"),
    ],
)
def test_an_action_part_that_cannot_be_read_is_refused_never_dropped(
    text: str, key: str, given: str
) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.key == key
    assert given in info.value.params["given"]
    assert USAGE["action"] in str(info.value) and "[p1|p2|p3] [LINK]" in str(info.value)


def test_due_inside_ordinary_words_is_text() -> None:
    assert parse("action Review alerts due to noise").text == "Review alerts due to noise"
    assert parse("action Move p4 hosts to rack 2").text == "Move p4 hosts to rack 2"


@pytest.mark.parametrize("verb", ["trigger", "detection", "resolution", "why"])
def test_review_text_verbs_keep_their_text(verb: str) -> None:
    assert parse(f"{verb} A release halved the pool") == Command(
        verb, text="A release halved the pool"
    )


@pytest.mark.parametrize(
    ("typed", "category"),
    [
        ("people", "people"),
        ("Tooling", "tooling"),
        ("data", "data"),
        ("process", "process"),
        ("environment", "environment"),
        ("人", "people"),
        ("机", "tooling"),
        ("料", "data"),
        ("法", "process"),
        ("环", "environment"),
    ],
)
def test_factor_takes_an_area_in_english_or_chinese(typed: str, category: str) -> None:
    assert parse(f"factor {typed} 值班 only one person") == Command(
        "factor", category=category, text="值班 only one person"
    )
    assert parse(f"factor{chr(0x3000)}{typed}\u3000夜间").category == category  # a wide space


@pytest.mark.parametrize("kind", ["well", "wrong", "lucky"])
def test_lesson_takes_its_kind(kind: str) -> None:
    assert parse(f"lesson {kind.upper()} We had a rollback") == Command(
        "lesson", category=kind, text="We had a rollback"
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("factor", "factor_needs_category"),
        ("factor people", "factor_needs_category"),
        ("factor staff Too few people", "factor_needs_category"),
        ("factor 人员 人手不足", "factor_needs_category"),
        ("lesson", "lesson_needs_kind"),
        ("lesson lucky", "lesson_needs_kind"),
        ("lesson good We rolled back", "lesson_needs_kind"),
        ("review the form", "no_arguments"),
        ("why", "text_required"),
        ("trigger", "text_required"),
    ],
)
def test_review_verbs_refuse_a_wrong_form_and_show_the_right_one(text: str, key: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.key == key
    assert USAGE[text.split()[0]] in str(info.value)


def test_review_opens_the_form() -> None:
    assert parse("review") == Command("review")


def test_the_usage_lines_are_design_s_grammar() -> None:
    assert USAGE["factor"] == "/incident factor people|tooling|data|process|environment TEXT…"
    assert USAGE["lesson"] == "/incident lesson well|wrong|lucky TEXT…"
    assert USAGE["action"] == "/incident action TEXT… [@owner] [due YYYY-MM-DD] [p1|p2|p3] [LINK]"
    assert {"trigger", "detection", "resolution", "why", "review"} <= set(USAGE)


@pytest.mark.parametrize("verb", ["status", "list", "runbooks", "help"])
def test_listing_verbs_take_nothing(verb: str) -> None:
    assert parse(verb) == Command(verb)


def test_snooze_with_and_without_a_duration() -> None:
    assert parse("snooze") == Command("snooze")
    assert parse("snooze 10m") == Command("snooze", duration=timedelta(minutes=10))


def test_leading_slash_incident_is_accepted() -> None:
    assert parse("/incident done 1.1") == parse("done 1.1")
    assert parse("/INCIDENT status") == Command("status")


@pytest.mark.parametrize("typed", ["STATUS", "Status", "sTaTuS"])
def test_verbs_are_case_insensitive(typed: str) -> None:
    assert parse(typed) == Command("status")


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse("  \t done 1.1 \n") == Command("done", step="1.1")


def test_every_usage_form_starts_with_slash_incident_and_its_verb() -> None:
    for verb, usage in USAGE.items():
        assert usage.split()[:2] == ["/incident", verb]


# --- refusals ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "usage"),
    [
        ("start", "start_needs_title", "/incident start RUNBOOK [SEV] TITLE…"),
        ("start service-outage", "start_needs_title", "/incident start RUNBOOK [SEV] TITLE…"),
        ("start service-outage sev1", "start_needs_title", "/incident start RUNBOOK [SEV] TITLE…"),
        ("start service-outage sev9 Title", "bad_severity", "/incident start RUNBOOK [SEV] TITLE…"),
        ("assign commander", "role_and_user", "/incident assign ROLE @user"),
        ("assign commander @ana @bo", "role_and_user", "/incident assign ROLE @user"),
        ("assign commander ana", "not_a_mention", "/incident assign ROLE @user"),
        ("handoff", "role_and_user", "/incident handoff ROLE @user"),
        ("handoff commander <@u1>", "not_a_mention", "/incident handoff ROLE @user"),
        ("accept now", "no_arguments", "/incident accept"),
        ("update", "text_required", "/incident update TEXT…"),
        ("note   ", "text_required", "/incident note TEXT…"),
        ("done", "one_step", "/incident done STEP"),
        ("done 1.1 1.2", "one_step", "/incident done STEP"),
        ("skip", "skip_needs_reason", "/incident skip STEP REASON…"),
        ("skip 1.1", "skip_needs_reason", "/incident skip STEP REASON…"),
        ("next phase", "no_arguments", "/incident next"),
        ("sev", "bad_severity", "/incident sev SEV"),
        ("sev critical", "bad_severity", "/incident sev SEV"),
        ("sev sev1 sev2", "bad_severity", "/incident sev SEV"),
        ("snooze later", "bad_duration", "/incident snooze [DURATION]"),
        ("mitigated yes", "no_arguments", "/incident mitigated"),
        ("resolved now", "no_arguments", "/incident resolved"),
        ("close it", "no_arguments", "/incident close"),
        ("summary", "text_required", "/incident summary TEXT…"),
        ("impact", "text_required", "/incident impact TEXT…"),
        ("cause", "text_required", "/incident cause TEXT…"),
        ("action", "text_required", "/incident action TEXT… [@owner] [due YYYY-MM-DD]"),
        (
            "action @ana due 2026-02-01",
            "text_required",
            "/incident action TEXT… [@owner] [due YYYY-MM-DD]",
        ),
        ("action Fix due tomorrow", "bad_date", "/incident action TEXT… [@owner] [due YYYY-MM-DD]"),
        (
            "action Fix due 2026-02-30",
            "bad_date",
            "/incident action TEXT… [@owner] [due YYYY-MM-DD]",
        ),
        ("status please", "no_arguments", "/incident status"),
        ("list all", "no_arguments", "/incident list"),
        ("runbooks x", "no_arguments", "/incident runbooks"),
        ("help me", "no_arguments", "/incident help"),
    ],
)
def test_bad_form_is_refused_with_its_key_and_the_right_form(
    text: str, key: str, usage: str
) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.key == key
    assert usage in str(info.value)


def test_unknown_verb_names_the_verb_and_points_to_help() -> None:
    with pytest.raises(ParseError) as info:
        parse("reboot everything")
    assert info.value.key == "unknown_verb"
    message = str(info.value)
    assert "`reboot`" in message and "/incident help" in message
    assert all(verb in message for verb in USAGE)


@pytest.mark.parametrize(
    ("typed", "suggestion", "form"),
    [
        ("stauts", "status", "/incident status"),
        ("acept", "accept", "/incident accept"),
        ("hand-off commander @ben", "handoff", "/incident handoff ROLE @user"),
        ("mitigate", "mitigated", "/incident mitigated"),
    ],
)
def test_a_misspelt_verb_gets_did_you_mean_and_the_right_form(
    typed: str, suggestion: str, form: str
) -> None:
    with pytest.raises(ParseError) as info:
        parse(typed)
    message = str(info.value)
    assert f"Did you mean `{suggestion}`? Try: `{form}`" in message
    assert message.startswith(f"I don't know `{typed.split()[0]}`.")


def test_a_misspelt_verb_in_chinese_keeps_the_form_too() -> None:
    from bot.messages import Renderer

    with pytest.raises(ParseError) as info:
        parse("stauts")
    text = Renderer("zh")(f"error.{info.value.key}", **info.value.params)
    assert "是不是指 `status`？用法：`/incident status`" in text


@pytest.mark.parametrize(
    "typed",
    [
        "incident status",
        "Incident status",
        "/incident status",
        "/INCIDENT status",
        "incident\u3000status",
    ],
)
def test_incident_may_be_typed_with_or_without_the_slash(typed: str) -> None:
    assert parse(typed).verb == "status"


def test_a_word_that_only_starts_with_incident_is_not_taken_for_the_prefix() -> None:
    with pytest.raises(ParseError) as info:
        parse("incidents")
    assert info.value.key == "unknown_verb" and "`incidents`" in str(info.value)
    assert parse("start service-outage incident at the gate").title == "incident at the gate"


def test_bad_severity_message_lists_the_choices() -> None:
    with pytest.raises(ParseError) as info:
        parse("sev sev5")
    assert "`sev5`" in str(info.value)
    assert "sev1, sev2, sev3, sev4" in str(info.value)


def test_every_parse_error_key_has_an_english_text() -> None:
    keys = {key.removeprefix("error.") for key in catalog("en") if key.startswith("error.")}
    for key in (
        "unknown_verb",
        "no_arguments",
        "text_required",
        "start_needs_title",
        "bad_severity",
        "role_and_user",
        "not_a_mention",
        "one_step",
        "skip_needs_reason",
        "bad_date",
        "bad_duration",
        "owner_in_text",
        "option_in_text",
        "bad_priority",
        "bad_link",
        "factor_needs_category",
        "lesson_needs_kind",
    ):
        assert key in keys


def test_huge_snooze_duration_is_refused_as_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse("snooze 99999999999d")


# --- cleaning of user text ---------------------------------------------------


def test_control_characters_and_bidi_overrides_are_dropped_from_text() -> None:
    cmd = parse("note a\u202eb\x00c\x1bd\u200ee\nline\ttab\r")
    assert cmd.text == "abcde\nline\ttab"


def test_long_text_is_capped() -> None:
    cmd = parse("update " + "x" * 5000)
    assert cmd.text is not None
    assert 0 < len(cmd.text) <= MAX_TEXT
    assert set(cmd.text) == {"x"}


@pytest.mark.parametrize("space", ["\u3000", "\u00a0"], ids=["ideographic", "nbsp"])
def test_non_ascii_spaces_do_not_merge_words(space: str) -> None:
    cmd = parse(f"note 服务{space}已恢复")
    assert cmd.text in {f"服务{space}已恢复", "服务 已恢复"}


# --- properties --------------------------------------------------------------

_CONTROL_CATEGORIES = {"Cc", "Cf", "Cs", "Co"}

_nasty_chars = st.sampled_from(
    [
        "\x00",
        "\x07",
        "\x1b",
        "\r",
        "\n",
        "\t",
        "\u202e",
        "\u202d",
        "\u2066",
        "\u200f",
        "\ufeff",
        "\u2028",
        "\x85",
        "<@",
        "|",
        ">",
        "@",
        " ",
        "due",
        "sev1",
        "/incident",
    ]
)
_verbs = st.sampled_from([*USAGE, "/incident", "/INCIDENT", "START", "Action", ""])
_words = st.lists(st.one_of(st.text(max_size=12), _nasty_chars, _verbs), max_size=10)

_any_text = st.one_of(
    st.text(),
    st.builds(lambda verb, rest: f"{verb} {rest}", _verbs, st.text()),
    st.builds(lambda verb, words: " ".join([verb, *words]), _verbs, _words),
    st.builds(
        lambda verb, ch, n: f"{verb} " + ch * n, _verbs, st.characters(), st.integers(4900, 5100)
    ),
    st.builds(
        lambda verb, chunk, n: f"{verb} " + chunk * n,
        _verbs,
        st.text(min_size=1, max_size=5),
        st.integers(1000, 1700),
    ),
)


def _text_fields(cmd: Command) -> list[str]:
    values: list[str] = []
    for field in fields(cmd):
        value = getattr(cmd, field.name)
        if isinstance(value, str):
            values.append(value)
        elif isinstance(value, Mention):
            values += [v for v in (value.id, value.name) if v is not None]
    return values


@hsettings(
    max_examples=400, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(_any_text)
@example("\u202e" * 5000)
@example("update " + "\x00\u202e" * 2500)
@example("start svc sev1 " + "标题" * 2500)
@example("action " + "@ana due " * 600)
@example("skip\t1.1\treason")
def test_parse_returns_a_command_or_a_parse_error_never_anything_else(text: str) -> None:
    try:
        cmd = parse(text)
    except ParseError as err:
        assert f"error.{err.key}" in catalog("en")
        assert str(err)  # renders in English without raising
        return
    assert isinstance(cmd, Command)
    assert cmd.verb == "open" or cmd.verb in USAGE


@hsettings(
    max_examples=400, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(_any_text)
@example("note " + "\u202eabc\x00" * 2000)
@example("start svc " + "\u2066x\u2069 " * 2000)
def test_text_fields_are_clean_and_bounded(text: str) -> None:
    try:
        cmd = parse(text)
    except ParseError:
        return
    for value in _text_fields(cmd):
        assert len(value) <= MAX_TEXT
        bad = [
            ch
            for ch in value
            if ch not in "\n\t" and unicodedata.category(ch) in _CONTROL_CATEGORIES
        ]
        assert bad == [], repr(value)


_plain_text = (
    st.text(
        alphabet=st.one_of(st.characters(categories=("L", "N", "P", "S")), st.just(" ")),
        min_size=1,
        max_size=200,
    )
    .map(str.strip)
    .filter(bool)
)


@given(_plain_text)
def test_plain_note_text_is_kept_exactly(text: str) -> None:
    assert parse(f"note {text}").text == text


def test_actions_lists_and_actions_done_marks_one_by_number() -> None:
    assert parse("actions") == Command("actions")
    assert parse("actions done 3") == Command("actions", number=3)
    assert parse("ACTIONS Done #12") == Command("actions", number=12)


@pytest.mark.parametrize(
    "text",
    ["actions done", "actions done three", "actions 3", "actions done 3 4", "actions done ²"],
)
def test_actions_done_without_a_plain_number_is_refused_with_the_right_form(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.key == "actions_done_needs_number"
    assert "/incident actions [done N]" in str(info.value)


def test_catchup_takes_nothing_and_its_usage_line_is_design_s() -> None:
    assert USAGE["catchup"] == "/incident catchup"
    assert parse("catchup") == Command("catchup")
    with pytest.raises(ParseError) as info:
        parse("catchup please")
    assert info.value.key == "no_arguments"
