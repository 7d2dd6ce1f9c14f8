"""The HTML report: one self-contained page (no external assets), every name escaped.

The page filters (a text box, a status list) and sorts (click a column heading) with a few
lines of inline script; a Content-Security-Policy forbids loading anything. The filter can be
preset from the address, ``report.html#q=alice&status=failure``, which also lets a test drive
it without a browser automation library.
"""

from __future__ import annotations

import json
import re
from html import escape as _escape

from .model import CycleReport
from .render import shown_name

_STYLE = """
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%;table-layout:fixed}th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}
td{white-space:pre-wrap;overflow-wrap:anywhere}
td.nowrap{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}td.num{text-align:right}td.id{font-size:90%}
th{background:#f3f3f3;cursor:pointer;user-select:none}th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
.counts span{display:inline-block;margin:0 1em .5em 0;padding:4px 8px;background:#eef}
tr.failure{background:#fdd}tr.staged{background:#ffd}tr.skipped{background:#eee}
.controls{margin:.5em 0}.controls input{padding:4px;width:20em}.controls select{padding:4px}
.dry{color:#a60}
"""

_SCRIPT = """
(function(){
const q=document.getElementById('filter'),st=document.getElementById('status'),shown=document.getElementById('shown'),
 tb=document.querySelector('#entries tbody'),rows=[...tb.rows];
rows.forEach(r=>{r._t=r.textContent.toLowerCase()});
function apply(){const t=q.value.toLowerCase(),s=st.value;let n=0;
 rows.forEach(r=>{const h=!(r._t.includes(t)&&(!s||r.dataset.status===s));r.hidden=h;if(!h)n++});
 shown.textContent=String(n);}
q.addEventListener('input',apply);st.addEventListener('change',apply);
const coll=new Intl.Collator(undefined,{numeric:true});
document.querySelectorAll('#entries th').forEach((th,i)=>th.addEventListener('click',()=>{
 const asc=th.getAttribute('aria-sort')!=='ascending';
 document.querySelectorAll('#entries th').forEach(h=>h.removeAttribute('aria-sort'));
 th.setAttribute('aria-sort',asc?'ascending':'descending');
 const key=r=>r.cells[i].textContent;
 [...tb.rows].sort((a,b)=>(asc?1:-1)*coll.compare(key(a),key(b))).forEach(r=>tb.appendChild(r));}));
const p=new URLSearchParams(location.hash.slice(1));
if(p.has('q'))q.value=p.get('q');
if(p.has('status'))st.value=p.get('status');
apply();
})();
"""

_SPECIAL = re.compile("[&<>\"']").search


def escape(text: str) -> str:
    """html.escape (quotes too: safe in text and attribute values), fast for clean text."""
    return _escape(text) if _SPECIAL(text) else text


# (heading, width): a fixed layout, so that a long name or reason wraps in its own column
# and the words of the short ones (action, type, status) are never broken
_COLUMNS = (("#", "3.5em"), ("action", "7.5em"), ("type", "6.5em"), ("name", "17%"), ("Entra id", "8em"), ("local id", "4em"),
            ("status", "5.5em"), ("reason", "20%"), ("modified", "auto"))


def _value(v: object) -> str:
    return json.dumps(v, ensure_ascii=False) if v is not None else "-"


def _modified(prop: str, change: dict, name: object) -> str:
    """One property's change: old -> new; a value set where there was none, alone; one equal to
    the entry's name (a new user's UPN), "as named" (as in the text report)."""
    old, new = change.get("old"), change.get("new")
    if old is None and new is not None and new == name:
        return f"{prop}: as named"
    if old is None:
        return f"{prop}: {escape(_value(new))}"
    return f"{prop}: {escape(_value(old))} \u2192 {escape(_value(new))}"


def _number(change_id: object, cycle_id: str) -> str:
    """The change's number in its cycle: its id without the cycle id, which the page's title says once."""
    text = str(change_id or "")
    return text[len(cycle_id) + 1:] if text.startswith(cycle_id + ":") else text


def render_html(report: CycleReport, *, verbose: bool = False) -> str:
    e = escape
    counts = "".join(f"<span>{e(str(k))}: {v}</span>" for k, v in report.counts.items()) or "<span>no changes</span>"
    rows = []
    for entry in report.entries:
        mods = "\n".join(_modified(e(str(k)), v, entry["name"]) for k, v in entry["modified"].items())
        status = e(str(entry["status"]))
        change_id = e(str(entry.get("change_id") or ""))
        rows.append(
            f'<tr class="{status}" data-status="{status}" id="{change_id}"><td class="num">{e(_number(entry.get("change_id"), report.cycle_id))}</td>'
            f"<td class=\"nowrap\">{e(str(entry['action']))}</td><td class=\"nowrap\">{e(str(entry['object_type']))}</td><td>{e(shown_name(entry))}</td>"
            f"<td class=\"id\">{e(str(entry.get('entra_id') or ''))}</td><td class=\"num\">{e(str(entry.get('local_id') or ''))}</td>"
            f"<td class=\"nowrap\">{status}</td><td>{e(str(entry.get('reason') or ''))}</td><td>{mods}</td></tr>"
        )
    errors = "".join(f"<li>{e(str(x))}</li>" for x in report.errors)
    notes = "".join(f"<li>{e(str(x))}</li>" for x in report.notes)
    phases = ", ".join(f"{e(str(k))} {float(v):.2f} s" for k, v in report.ordered_phases()) if verbose else ""
    dry = ' <span class="dry">(dry run: nothing was changed)</span>' if report.dry_run else ""
    statuses = sorted({str(x["status"]) for x in report.entries})
    options = "".join(f'<option value="{e(s)}">{e(s)}</option>' for s in statuses)
    head = "".join(f"<th scope=\"col\">{c}</th>" for c, _ in _COLUMNS)
    cols = "".join(f'<col style="width:{w}">' for _, w in _COLUMNS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>syncd cycle {e(report.cycle_id)}</title><style>{_STYLE}</style></head>
<body><h1>Cycle {e(report.cycle_id)}: <span id="cycle-status">{e(report.status)}</span>{dry}</h1>
<p>Mode {e(report.mode)}, trigger {e(report.trigger)}, {e(report.started_at)} &rarr; {e(report.ended_at)};
{int(report.graph_requests)} Graph requests ({int(report.throttled)} throttled).{f' Phases: {phases}.' if phases else ''}</p>
<div class="counts" id="counts">{counts}</div>
{f'<h2>Errors</h2><ul id="errors">{errors}</ul>' if errors else ''}
{f'<h2>Notes</h2><ul id="notes">{notes}</ul>' if notes else ''}
<h2>Entries (<span id="shown">{len(report.entries)}</span> of {len(report.entries)})</h2>
<div class="controls"><input id="filter" type="search" placeholder="filter entries" aria-label="filter entries">
<select id="status" aria-label="status"><option value="">every status</option>{options}</select></div>
<table id="entries"><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<script>{_SCRIPT}</script></body></html>
"""
