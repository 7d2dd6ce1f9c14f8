"""Reports people read: nothing cut without an ellipsis, a new user's UPN once a row, the
timings only on request, HTML cells that do not break words."""

from __future__ import annotations

import re

from syncd.model import Change
from syncd.report.render import COLUMN_MAX, detail
from tests.report.conftest import Env, make_report

UPN = "margaret.hamilton@contoso.onmicrosoft.com"


def _changes() -> list[Change]:
    return [
        Change("create", "user", "e-1", UPN, local_id=3, reason="assigned to the application",
               modified={"user_name": (None, UPN), "display_name": (None, "Margaret Hamilton"), "email": (None, UPN), "status": (None, "active")}),
        Change("add_member", "membership", "g-1", "Engineering / " + UPN, reason="member in Entra ID"),
        Change("update", "user", "e-2", "ada@contoso.com", local_id=4, reason="changed in Entra ID",
               modified={"display_name": ("Ada", "Ada Lovelace")}),
    ]


def test_text_rows_cut_with_an_ellipsis_and_say_a_new_users_upn_once(env: Env) -> None:
    env.save(make_report("c1", changes=_changes()))
    out = env.cli("report").out
    rows = {line.split()[0]: line for line in out.splitlines() if line.split()[:1] in (["create"], ["add_member"], ["update"])}
    assert rows["create"].count(UPN) == 1, rows["create"]
    assert "display_name: Margaret Hamilton" in rows["create"] and "status: active" in rows["create"]
    assert "email, user_name: as named" in rows["create"]  # (stored entries keep their keys sorted)
    assert "display_name: Ada -> Ada Lovelace" in rows["update"]
    member = "Engineering / " + UPN
    assert len(member) > COLUMN_MAX and member not in rows["add_member"]
    assert member[: COLUMN_MAX - 1] + "…" in rows["add_member"]  # cut, and it says so
    assert "phases:" not in out and "phases: read" in env.cli("report", "-v").out


def test_every_value_that_is_not_the_name_is_shown() -> None:
    entry = {"name": "x@contoso.com", "reason": "r", "modified": {
        "user_name": {"old": None, "new": "x@contoso.com"}, "email": {"old": None, "new": "x@fabrikam.com"}}}
    assert detail(entry) == "email: x@fabrikam.com; user_name: as named"
    assert detail({"name": "n", "reason": "why", "modified": {}}) == "why"


def test_html_numbers_rows_once_per_cycle_and_keeps_words_whole(env: Env) -> None:
    env.save(make_report("20261203T023232Z-354eef5a", changes=_changes()))
    page = env.cli("report", "--format", "html").out
    assert page.count("20261203T023232Z-354eef5a") == 2 + 3  # the title and heading, and each row's anchor id only
    cells = re.findall(r'<td class="nowrap">(success)</td>', page)
    assert len(cells) == 3  # the status column never breaks
    assert "td.nowrap{white-space:nowrap" in page and "table-layout:fixed" in page and "word-break:break-word" not in page
    assert 'id="20261203T023232Z-354eef5a:1"><td class="num">1</td>' in page
    assert "Phases:" not in page and "Phases: read" in env.cli("report", "--format", "html", "--verbose").out
    create_row = next(r for r in page.split("<tr ")[1:] if "margaret" in r)
    assert create_row.count(UPN) == 1 and "as named" in create_row
    assert 'display_name: &quot;Margaret Hamilton&quot;' in create_row and "\u2192" not in create_row  # a value set, not "- ->"
