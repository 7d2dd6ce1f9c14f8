"""Report renderers: text (a terminal), json (SPEC §4), csv (spreadsheets), html (one page)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator

from .model import CycleReport


def render(report: CycleReport, fmt: str, *, verbose: bool = False) -> str:
    """``verbose``: text and html also give the time each phase took (json and csv always hold it)."""
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "html":
        from .html import render_html

        return render_html(report, verbose=verbose)
    return render_text(report, verbose=verbose)


def render_json(report: CycleReport) -> str:
    """SPEC §4, indented, one entry per line (each as the audit trail stores it)."""
    return "".join(json_chunks(report))


def json_chunks(report: CycleReport) -> Iterator[str]:
    """``render_json`` in pieces, for writing a 100k-entry report without holding it twice:
    a piece per chunk of entries (``Entries.texts``, one entry per line already)."""
    head = json.dumps(report.header(), ensure_ascii=False, indent=2)
    if not len(report.entries):
        yield head[:-2] + ',\n  "entries": []\n}'
        return
    yield head[:-2] + ',\n  "entries": [\n    '
    sep = ""
    for text in report.entries.texts():
        yield sep + text.decode().replace("\n", ",\n    ")  # (canonical JSON holds no raw newline)
        sep = ",\n    "
    yield "\n  ]\n}"


def render_text_summary(report: CycleReport) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in report.counts.items()) or "no changes"
    dry = " (dry run: nothing changed)" if report.dry_run else ""
    lines = [
        f"cycle {report.cycle_id}: {report.status}{dry}",
        f"  mode {report.mode}, trigger {report.trigger}, {report.started_at} -> {report.ended_at}",
        f"  {counts}; {report.graph_requests} Graph requests"
        + (f" ({report.throttled} throttled)" if report.throttled else ""),
    ]
    for app in report.apps:  # SPEC §7: each SCIM application pushed in this cycle
        planned = f", {len(app['planned'])} request(s) planned" if "planned" in app else ""
        lines.append(f"  app {app['name']}: {app['status']}, {app.get('requests', 0)} request(s){planned}")
    lines += [f"  note: {_one_line(n)}" for n in report.notes]
    lines += [f"  error: {_one_line(e)}" for e in report.errors]
    return "\n".join(lines)


# the widest a text report's ACTION, TYPE, STATUS and NAME columns grow; longer values are cut with "…"
COLUMN_MAX = 48


def render_text(report: CycleReport, *, verbose: bool = False) -> str:
    out = [render_text_summary(report)]
    if report.phases and verbose:
        out.append("  phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in report.ordered_phases()))
    if report.entries:
        rows = [
            (e["action"], e["object_type"], e["status"], _one_line(shown_name(e)), _one_line(detail(e)))
            for e in report.entries
        ]
        headers = ("ACTION", "TYPE", "STATUS", "NAME", "DETAIL")
        widths = [min(max([len(h)] + [len(r[i]) for r in rows]), COLUMN_MAX) for i, h in enumerate(headers[:-1])]
        out.append("")
        out.append("  ".join(h.ljust(w) for h, w in zip(headers, [*widths, 0], strict=True)).rstrip())
        for r in rows:
            out.append(("  ".join(_cut(v, w).ljust(w) for v, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]).rstrip())
    return "\n".join(out)


def shown_name(entry: dict) -> str:
    """An entry's name; a SCIM application's entry (R24 ``target``) says which application."""
    target = entry.get("target")
    return str(entry["name"]) if target in (None, "local") else f"{target}: {entry['name']}"


def _cut(value: str, width: int) -> str:
    """``value`` in ``width`` characters; one that does not fit ends with an ellipsis."""
    return value if len(value) <= width else value[: width - 1] + "…"


def detail(entry: dict) -> str:
    """What an entry changed, in one line, for people: ``prop: old -> new`` for a change,
    ``prop: value`` for a value it sets where there was none; values equal to the entry's
    name (a new user's user_name and email are its UPN) are said once, not repeated; without
    modifications, the entry's reason."""
    modified = entry.get("modified") or {}
    if not modified:
        return str(entry.get("reason") or "")
    name = entry.get("name")
    parts: list[str] = []
    as_name: list[str] = []
    for prop, change in modified.items():
        old, new = change.get("old"), change.get("new")
        if old is None and new is not None and name is not None and new == name:
            as_name.append(prop)
        elif old is None:
            parts.append(f"{prop}: {_short(new)}")
        else:
            parts.append(f"{prop}: {_short(old)} -> {_short(new)}")
    if as_name:
        parts.append(f"{', '.join(as_name)}: as named")
    return "; ".join(parts)


# C0/C1 control characters (ESC starts terminal escape sequences): shown, never sent raw
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _one_line(value: object) -> str:
    if value is None:
        return ""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", " ".join(str(value).split()))


def _short(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return "-" if value is None else str(value)


CSV_FIELDS = [
    "cycle_id", "change_id", "action", "object_type", "entra_id", "name", "local_id", "status", "reason",
    "property", "old", "new", "target",
]


def render_csv(report: CycleReport) -> str:
    """One row per entry and modified property (an entry without modifications: one row)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    cell = _csv_cell
    for e in report.entries:
        base = [cell(x) for x in (report.cycle_id, e.get("change_id"), e["action"], e["object_type"], e["entra_id"],
                                  e["name"], e.get("local_id"), e["status"], e["reason"])]
        mods = e["modified"] or {"": {"old": None, "new": None}}
        target = cell(e.get("target") or "local")
        writer.writerows([*base, cell(prop), cell(v["old"]), cell(v["new"]), target] for prop, v in mods.items())
    return buf.getvalue()


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if type(value) is str:
        text = value
    elif isinstance(value, list | dict):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    # a cell starting with = + - @ | (or a tab/CR/LF, or spaces before one) is a formula to
    # spreadsheets: a leading apostrophe keeps it text
    if text and (text[0] in _FORMULA or (text[0] == " " and text.lstrip(" \t\r\n")[:1] in _FORMULA)):
        return "'" + text
    return text


_FORMULA = frozenset("=+-@\t\r\n|")


def write_private(path: str, text: str) -> None:
    """Reports name users: write them readable by the owner only."""
    with open_private(path) as f:
        f.write(text)


def open_private(path: str):
    """A text file open for writing, mode 0600 even when it existed with a wider mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8", newline="")
