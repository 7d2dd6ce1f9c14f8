"""The HTML report: one self-contained page (no external assets), every name escaped."""

from __future__ import annotations

import json
from html import escape

from .model import CycleReport

_STYLE = """
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3;cursor:pointer}.counts span{display:inline-block;margin:0 1em .5em 0;padding:4px 8px;background:#eef}
.failure{background:#fdd}.staged{background:#ffd}.skipped{background:#eee}input{margin:.5em 0;padding:4px;width:20em}
"""

_SCRIPT = """
const q=document.getElementById('filter'),rows=[...document.querySelectorAll('#entries tbody tr')];
q.addEventListener('input',()=>{const t=q.value.toLowerCase();rows.forEach(r=>{r.hidden=!r.textContent.toLowerCase().includes(t)})});
document.querySelectorAll('#entries th').forEach((th,i)=>th.addEventListener('click',()=>{
 const tb=document.querySelector('#entries tbody'),asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
 [...tb.rows].sort((a,b)=>{const x=a.cells[i].textContent,y=b.cells[i].textContent;
  return (asc?1:-1)*x.localeCompare(y,undefined,{numeric:true})}).forEach(r=>tb.appendChild(r))}));
"""


def render_html(report: CycleReport) -> str:
    e = escape
    counts = "".join(f"<span>{e(k)}: {v}</span>" for k, v in report.counts.items()) or "<span>no changes</span>"
    rows = []
    for entry in report.entries:
        mods = "<br>".join(
            f"{e(k)}: {e(json.dumps(v['old'], ensure_ascii=False))} &rarr; {e(json.dumps(v['new'], ensure_ascii=False))}"
            for k, v in entry["modified"].items()
        )
        rows.append(
            f"<tr class=\"{e(entry['status'])}\"><td>{e(str(entry.get('change_id', '')))}</td><td>{e(entry['action'])}</td>"
            f"<td>{e(entry['object_type'])}</td><td>{e(str(entry['name']))}</td><td>{e(str(entry['entra_id'] or ''))}</td>"
            f"<td>{e(entry['status'])}</td><td>{e(entry['reason'] or '')}</td><td>{mods}</td></tr>"
        )
    errors = "".join(f"<li>{e(x)}</li>" for x in report.errors)
    dry = " (dry run)" if report.dry_run else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>syncd cycle {e(report.cycle_id)}</title><style>{_STYLE}</style></head>
<body><h1>Cycle {e(report.cycle_id)}: {e(report.status)}{dry}</h1>
<p>Mode {e(report.mode)}, trigger {e(report.trigger)}, {e(report.started_at)} &rarr; {e(report.ended_at)};
{report.graph_requests} Graph requests ({report.throttled} throttled).</p>
<div class="counts">{counts}</div>
{f'<h2>Errors</h2><ul>{errors}</ul>' if errors else ''}
<h2>Entries ({len(report.entries)})</h2>
<input id="filter" type="search" placeholder="filter entries" aria-label="filter entries">
<table id="entries"><thead><tr><th>change</th><th>action</th><th>type</th><th>name</th><th>Entra id</th><th>status</th><th>reason</th><th>modified</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<script>{_SCRIPT}</script></body></html>
"""
