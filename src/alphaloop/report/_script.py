"""The report's only script: the variants table, written here (no library).

The rows come as JSON in a ``<script type="application/json">`` element; the script keeps
them in memory and builds the DOM rows of one page at a time, so 10,000 variants cost 50 rows
of DOM. Sorting (click a column header), filtering (text, verdict, experiment) and paging.
"""

JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("variants-data").textContent);
  var F = data.fields, col = {};
  F.forEach(function (name, i) { col[name] = i; });
  var rows = data.rows, exps = data.experiments, strategies = data.strategies;
  var table = document.getElementById("variants-table");
  var body = table.querySelector("tbody");
  var search = document.getElementById("variants-search");
  var verdictSel = document.getElementById("variants-verdict");
  var expSel = document.getElementById("variants-experiment");
  var status = document.getElementById("variants-status");
  var pageSize = 50, page = 0, sortKey = null, sortDir = 1, view = rows.slice();

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function num(v, digits) { return v === null || v === undefined ? "" : Number(v).toFixed(digits); }
  function pct(v) { return v === null || v === undefined ? "" : (100 * v).toFixed(1) + "%"; }
  function value(r, key) {
    if (key === "experiment") return exps[r[col.experiment]][0];
    if (key === "research") return exps[r[col.experiment]][1];
    if (key === "strategy") return strategies[r[col.strategy]];
    if (key === "action") return exps[r[col.experiment]][2];
    return r[col[key]];
  }
  function haystack(r) {
    return [strategies[r[col.strategy]], r[col.parameters], r[col.failed], r[col.variant],
            r[col.holdout], exps[r[col.experiment]][2]].join(" ").toLowerCase();
  }
  var hay = rows.map(haystack);

  function apply() {
    var q = search.value.trim().toLowerCase(), v = verdictSel.value, e = expSel.value;
    view = [];
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      if (q && hay[i].indexOf(q) < 0) continue;
      if (v !== "all" && String(r[col.verdict]) !== v) continue;
      if (e !== "all" && String(r[col.experiment]) !== e) continue;
      view.push(r);
    }
    if (sortKey) {
      view.sort(function (a, b) {
        var x = value(a, sortKey), y = value(b, sortKey);
        if (x === null || x === undefined || x === "") return 1;
        if (y === null || y === undefined || y === "") return -1;
        return (x < y ? -1 : x > y ? 1 : 0) * sortDir;
      });
    }
    page = 0;
    draw();
  }

  function draw() {
    var pages = Math.max(1, Math.ceil(view.length / pageSize));
    page = Math.min(page, pages - 1);
    var out = [], start = page * pageSize;
    view.slice(start, start + pageSize).forEach(function (r) {
      var ex = exps[r[col.experiment]], verdict = r[col.verdict];
      var mark = verdict === 1 ? '<span class="ok">passed</span>' :
        verdict === 0 ? '<span class="no">failed</span>' : '<span class="err">error</span>';
      out.push("<tr><td class=num>" + ex[0] + "</td><td class=num>" + ex[1] + "</td><td>" +
        esc(r[col.variant]) + "</td><td>" + esc(strategies[r[col.strategy]]) +
        "</td><td class=params>" + esc(r[col.parameters]) + "</td><td class=num>" +
        num(r[col.gate_score], 3) + "</td><td>" + mark + "</td><td class=num>" +
        num(r[col.sharpe_ratio], 3) + "</td><td class=num>" + pct(r[col.total_return]) +
        "</td><td class=num>" + pct(r[col.max_drawdown]) + "</td><td class=num>" +
        pct(r[col.win_rate]) + "</td><td class=num>" + (r[col.num_trades] === null ? "" :
        r[col.num_trades]) + "</td><td>" + esc(r[col.holdout]) + "</td><td class=failed>" +
        esc(r[col.failed]) + "</td><td>" + esc(ex[2]) + "</td></tr>");
    });
    body.innerHTML = out.join("");
    status.textContent = view.length + " of " + rows.length + " variants, page " +
      (page + 1) + " of " + pages;
    document.getElementById("variants-prev").disabled = page === 0;
    document.getElementById("variants-next").disabled = page >= pages - 1;
  }

  table.querySelectorAll("th[data-key]").forEach(function (th) {
    th.addEventListener("click", function () {
      var key = th.getAttribute("data-key");
      sortDir = sortKey === key ? -sortDir : (th.classList.contains("num") ? -1 : 1);
      sortKey = key;
      table.querySelectorAll("th[data-key]").forEach(function (h) {
        h.removeAttribute("aria-sort");
      });
      th.setAttribute("aria-sort", sortDir === 1 ? "ascending" : "descending");
      apply();
    });
  });
  search.addEventListener("input", apply);
  verdictSel.addEventListener("change", apply);
  expSel.addEventListener("change", apply);
  document.getElementById("variants-prev").addEventListener("click", function () {
    page -= 1; draw();
  });
  document.getElementById("variants-next").addEventListener("click", function () {
    page += 1; draw();
  });
  document.querySelectorAll("a[data-experiment]").forEach(function (a) {
    a.addEventListener("click", function () {
      expSel.value = a.getAttribute("data-experiment");
      search.value = ""; verdictSel.value = "all";
      apply();
    });
  });
  apply();
})();
"""
