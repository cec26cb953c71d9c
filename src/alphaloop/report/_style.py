"""The report's stylesheet: written here, inlined in the page (no font or file fetched)."""

CSS = """
:root { --ink:#111827; --muted:#6b7280; --line:#e5e7eb; --pass:#15803d; --fail:#b91c1c;
  --warn:#b45309; --bg:#ffffff; --soft:#f9fafb; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: var(--bg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 20px 64px; }
h1 { font-size: 22px; margin: 0 0 4px; word-break: break-all; }
h2 { font-size: 18px; margin: 36px 0 8px; padding-top: 8px; border-top: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
p { margin: 6px 0; }
nav { font-size: 13px; margin: 8px 0 0; }
nav a { margin-right: 12px; color: #1d4ed8; text-decoration: none; }
.muted, .def { color: var(--muted); font-size: 13px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 600;
  color: #fff; margin-right: 8px; }
.badge.SUCCESS { background: var(--pass); } .badge.FAILED { background: var(--fail); }
.badge.RUNNING, .badge.PAUSED, .badge.INTERRUPTED { background: var(--warn); }
.verdict { font-size: 17px; margin: 12px 0; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.ok { color: var(--pass); } .no { color: var(--fail); } .err { color: var(--warn); }
.figures { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; margin: 12px 0; }
.figure { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.figure b { font-size: 20px; }
svg.chart { width: 100%; height: auto; display: block; margin: 4px 0 2px; }
svg.chart.heat { max-width: 900px; }
svg .grid { stroke: #eef0f3; } svg .axis { stroke: #9ca3af; }
svg .tick, svg .legend, svg .note { font-size: 11px; fill: #4b5563; }
svg .cell { font-size: 10px; fill: #111827; }
svg .line { fill: none; stroke-width: 1.4; }
svg .holdout { fill: #fef3c7; fill-opacity: 0.45; }
svg .boundary { stroke: #b45309; stroke-dasharray: 4 3; }
svg .pass { stroke: var(--pass); stroke-dasharray: 5 4; }
svg .long { fill: #15803d; } svg .short { fill: #b91c1c; }
svg .exit { fill: none; stroke: #1d4ed8; stroke-width: 1.2; }
details { border-left: 2px solid var(--line); margin: 4px 0 4px 4px; padding-left: 12px; }
summary { cursor: pointer; }
.tree ul { margin: 4px 0 8px; padding-left: 18px; font-size: 13px; }
.controls { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin: 8px 0; }
.controls input[type=search] { flex: 1 1 240px; padding: 4px 8px; }
#variants-table th[data-key] { cursor: pointer; user-select: none; }
#variants-table th[aria-sort=ascending]::after { content: " \\25B2"; }
#variants-table th[aria-sort=descending]::after { content: " \\25BC"; }
#variants-table td.params { min-width: 150px; } #variants-table td.failed { min-width: 220px; }
#variants-table { font-size: 12px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
  padding: 10px; overflow: auto; font-size: 12px; line-height: 1.4; max-height: 520px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0;
  font-size: 14px; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; word-break: break-all; }
.scroll { overflow-x: auto; }
.note-box { background: #fffbeb; border: 1px solid #fde68a; padding: 8px 12px;
  border-radius: 6px; }
"""
