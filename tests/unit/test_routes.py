"""The routes file: first match wins, full-match RE2, expression-only titles, file:line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from bot.alerts import parse
from bot.routes import MAX_ROUTES_BYTES, MAX_TITLE, RoutesInvalid, is_routes_file, load_routes
from bot.runbook import shipped_runbooks_dir, validate_paths
from tests.alerting import ROUTES, alert, group

RUNBOOKS = ["security-incident", "service-outage"]


def write(tmp_path: Path, text: str, name: str = "routes.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def notification(**changes):
    data = group(**changes)
    return parse(json.dumps(data).encode())


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(RoutesInvalid) as refused:
        load_routes(write(tmp_path, text), RUNBOOKS)
    return [str(p).replace(str(tmp_path) + "/", "") for p in refused.value.problems]


def test_the_first_route_that_matches_wins(tmp_path):
    routes = load_routes(write(tmp_path, ROUTES), RUNBOOKS)
    decided = routes.decide(notification())
    assert decided is not None
    assert (decided.route, decided.runbook, decided.severity) == (1, "service-outage", "sev1")
    assert decided.title == "CHECKOUT: Checkout answers 500 for 12% of requests"
    assert decided.announce == "CPAYMENTS"
    # also critical, but the first route's regex is a full match: "checkout-eu" is not it
    other = routes.decide(
        notification(
            common={"alertname": "CheckoutDown", "service": "checkout-eu", "severity": "critical"}
        )
    )
    assert other is not None and other.route == 3 and other.severity is None
    assert other.title == "Checkout answers 500 for 12% of requests"  # the default title


def test_every_match_label_must_be_equal_and_every_regex_must_match(tmp_path):
    routes = load_routes(write(tmp_path, ROUTES), RUNBOOKS)
    assert (
        routes.decide(
            notification(common={"alertname": "CheckoutDown", "service": "payments"})
        ).route
        == 1
    )
    assert routes.decide(notification(common={"alertname": "CheckoutDown"})) is None  # no service
    assert routes.decide(
        notification(common={"team": "security", "alertname": "Leak"})
    ).runbook == ("security-incident")
    assert (
        routes.decide(notification(common={"alertname": "DiskFull", "severity": "warning"})) is None
    )


def test_group_labels_count_when_alertmanager_sends_no_common_ones(tmp_path):
    routes = load_routes(
        write(
            tmp_path, "routes:\n  - {match: {alertname: CheckoutDown}, runbook: service-outage}\n"
        ),
        RUNBOOKS,
    )
    assert routes.decide(notification(common={})) is not None  # groupLabels has the alertname


def test_numbers_and_booleans_in_yaml_match_as_label_text(tmp_path):
    routes = load_routes(
        write(
            tmp_path, "routes:\n  - {match: {code: 500, canary: true}, runbook: service-outage}\n"
        ),
        RUNBOOKS,
    )
    assert routes.decide(notification(common={"code": "500", "canary": "true"})) is not None
    assert routes.decide(notification(common={"code": "500", "canary": "True"})) is None


def test_titles_are_one_bounded_line_and_fall_back_when_empty_or_broken(tmp_path):
    text = """
    routes:
      - match: {kind: long}
        runbook: service-outage
        title: "{{ alerts }}"
      - match: {kind: empty}
        runbook: service-outage
        title: "{{ commonAnnotations.nothing.here }}"
      - match: {kind: lines}
        runbook: service-outage
        title: "{{ commonAnnotations.summary }}"
      - match: {kind: bare}
        runbook: service-outage
    """
    routes = load_routes(write(tmp_path, text), RUNBOOKS)
    huge = [alert(fingerprint=str(i), summary="z" * 1000) for i in range(200)]
    long_title = routes.decide(notification(common={"kind": "long"}, alerts=huge)).title
    assert len(long_title) == MAX_TITLE and "\n" not in long_title
    assert routes.decide(notification(common={"kind": "empty"})).title.startswith(
        "Checkout answers"
    )
    lines = routes.decide(
        notification(common={"kind": "lines"}, annotations={"summary": "two\nlines\t here"})
    )
    assert lines.title == "two lines here"
    bare = routes.decide(notification(common={"kind": "bare", "alertname": "X"}, annotations={}))
    assert bare.title == "X"


def test_a_regex_that_would_backtrack_for_ever_in_python_matches_in_linear_time(tmp_path):
    routes = load_routes(
        write(tmp_path, 'routes:\n  - {match_re: {service: "(a+)+$"}, runbook: service-outage}\n'),
        RUNBOOKS,
    )
    hostile = "a" * 200_000 + "!"  # re.fullmatch("(a+)+$", …) would not return in our lifetime
    assert routes.decide(notification(common={"service": hostile})) is None
    assert routes.decide(notification(common={"service": "aaaa"})) is not None


def test_every_problem_is_reported_at_its_line(tmp_path):
    found = problems(
        tmp_path,
        """\
        routes:
          - match: {alertname: A}
            runbook: nope
          - match_re: {service: "(unclosed"}
            runbook: service-outage
          - runbook: service-outage
            title: "{% for a in alerts %}{{ a }}{% endfor %}"
          - runbook: service-outage
            title: "{{ 'x' * 1000000000 }}"
          - runbook: service-outage
            title: "{{ range(10) }}"
          - runbook: service-outage
            title: "{{ commonLabels.service | replace('a', 'aaaaaaaa') }}"
          - runbook: service-outage
            title: "{{ commonLabels.__class__ }}"
          - runbook: service-outage
            title: "{{ unclosed"
        """,
    )
    assert (
        found[0]
        == "routes.yaml:3: routes[0].runbook: unknown runbook 'nope' (known: security-incident, service-outage)"
    )
    assert found[1].startswith(
        "routes.yaml:4: routes[1].match_re.service: bad regular expression '(unclosed': missing )"
    )
    assert found[2].startswith(
        "routes.yaml:7: routes[2].title: a statement ({% … %}) cannot be used"
    )
    assert found[3].startswith("routes.yaml:9: routes[3].title: arithmetic (*) cannot be used")
    assert found[4].startswith("routes.yaml:11: routes[4].title: a call cannot be used")
    assert found[5].startswith(
        "routes.yaml:13: routes[5].title: the filter 'replace' is not allowed"
    )
    assert found[6] == "routes.yaml:15: routes[6].title: '.__class__' is not a field of the payload"
    assert found[7].startswith("routes.yaml:17: routes[7].title: template syntax:")
    assert len(found) == 8


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "routes:\n  - {runbook: service-outage, severity: sev9}\n",
            "routes.yaml:2: routes[0].severity: Input should be 'sev1', 'sev2', 'sev3' or 'sev4'",
        ),
        (
            "routes:\n  - {runbook: service-outage, matches: {a: b}}\n",
            "routes.yaml:2: routes[0]: unknown key 'matches'",
        ),
        (
            "routes:\n  - {match: {alertname: A}}\n",
            "routes.yaml:2: routes[0]: missing required key 'runbook'",
        ),
        (
            "routes:\n  - {match: {bad-label: A}, runbook: service-outage}\n",
            "routes.yaml:2: routes[0].match: 'bad-label' is not a label name (letters, digits and _)",
        ),
        ("route:\n  - {runbook: service-outage}\n", "routes.yaml:1: unknown key 'route'"),
        (
            "- {runbook: service-outage}\n",
            "routes.yaml:1: a routes file is a YAML mapping with a list `routes:`",
        ),
        (
            "routes:\n  - &r {runbook: service-outage}\n  - *r\n",
            "routes.yaml:3: YAML aliases (*r) are not allowed",
        ),
        (
            "routes:\n  - {runbook: service-outage, runbook: pr-crisis}\n",
            "routes.yaml:2: routes[0].runbook: duplicate key 'runbook'",
        ),
    ],
)
def test_shape_problems_name_the_line_and_what_to_write(tmp_path, text, expected):
    found = problems(tmp_path, text)
    assert any(line.startswith(expected) for line in found), found


def test_hostile_files_are_refused_before_they_are_parsed(tmp_path):
    big = write(
        tmp_path, "routes:\n" + "  - {runbook: service-outage}\n" * (MAX_ROUTES_BYTES // 20)
    )
    with pytest.raises(RoutesInvalid) as refused:
        load_routes(big, RUNBOOKS)
    assert "at most 256 KiB" in str(refused.value)
    with pytest.raises(RoutesInvalid) as missing:
        load_routes(tmp_path / "absent.yaml", RUNBOOKS)
    assert "no such file (INCIDENT_BOT_ROUTES)" in str(missing.value)


def test_the_shipped_example_routes_validate_against_the_shipped_runbooks():
    example = Path(__file__).parents[2] / "config" / "routes.example.yaml"
    good, problems_found = validate_paths([shipped_runbooks_dir()])
    assert problems_found == []
    routes = load_routes(example, [g.runbook.id for g in good])
    assert len(routes) == 3
    assert is_routes_file(example)
    assert not is_routes_file(shipped_runbooks_dir() / "service-outage.yaml")
