// alphaloop dashboard: keeps the page up to date from the JSON API (polling, no reload).
// Hand-written, no libraries; every value goes in through textContent, never as HTML.
"use strict";
(function () {
  var FINAL = { COMPLETED: 1, FAILED: 1, INTERRUPTED: 1 };  // poll slower once ended
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function num(v, digits) {
    if (v === null || v === undefined) return "";
    if (typeof v !== "number") return String(v);
    return Number.isInteger(v) ? String(v) : v.toFixed(digits === undefined ? 3 : digits);
  }
  function conn(text) { var c = $("conn"); if (c) c.textContent = text || ""; }

  function getJSON(url) {
    return fetch(url, { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (r.status === 503) { var b = new Error("busy"); b.busy = true; throw b; }
          if (!r.ok) throw new Error(body.error || ("HTTP " + r.status));
          return body;
        });
      });
  }
  function later(fn, ms) { window.setTimeout(fn, ms); }
  function failed(err) {
    conn(err && err.busy ? "database busy, retrying" : "cannot reach the dashboard, retrying");
  }

  // --- the workflow list ---------------------------------------------------------------
  function indexPage() {
    function draw(rows) {
      var tbody = document.querySelector("#workflows tbody");
      tbody.textContent = "";
      rows.forEach(function (r) {
        var tr = el("tr");
        var a = el("a", r.workflow_id);
        a.href = "/w/" + encodeURIComponent(r.workflow_id);
        var td = el("td"); td.appendChild(a); tr.appendChild(td);
        var st = el("td"); st.appendChild(el("span", r.status, "status s-" + r.status));
        tr.appendChild(st);
        tr.appendChild(el("td", r.phase_plain));
        tr.appendChild(el("td", r.ticker + " " + r.timeframe));
        tr.appendChild(el("td", r.best_name || ""));
        tr.appendChild(el("td", num(r.best_score), "num"));
        tr.appendChild(el("td", (r.created_at || "").slice(0, 19).replace("T", " ")));
        tbody.appendChild(tr);
      });
      $("empty").hidden = rows.length > 0;
    }
    function poll() {
      getJSON("/api/workflows").then(function (d) { conn(""); draw(d.workflows); later(poll, 2000); },
        function (e) { failed(e); later(poll, 2000); });
    }
    later(poll, 1000);
  }

  // --- one workflow ----------------------------------------------------------------------
  function workflowPage(wid) {
    var base = "/api/w/" + encodeURIComponent(wid);
    var view = { offset: 0, limit: 50, sort: "new", sample: "", shownSeq: -1, total: -1 };
    var seen = null;  // record numbers shown so far (new ones are highlighted)

    function kv(dl, pairs) {
      dl.textContent = "";
      pairs.forEach(function (p) { dl.appendChild(el("dt", p[0])); dl.appendChild(el("dd", p[1])); });
    }
    function drawSummary(s) {
      var status = $("status");
      status.textContent = s.status;
      status.className = "status s-" + s.status;
      $("status-text").textContent = s.status_text + (s.failure_reason ? " — " + s.failure_reason : "");
      var phase = $("phase");
      phase.textContent = s.phase_plain;
      phase.dataset.phase = s.phase;
      $("phase-code").textContent = s.phase;
      kv($("counters"), [
        ["strategy", s.counters.strategy[0] + " of " + s.counters.strategy[1]],
        ["research", s.counters.research[0] + " of " + s.counters.research[1]],
        ["total", s.counters.total[0] + " of " + s.counters.total[1]],
        ["variants tried", s.variants_tried],
        ["holdout looks", s.holdout_looks]]);
      var q = s.queue;
      kv($("queue"), q ? [["waiting", q.queued], ["running", q.in_progress],
        ["done", q.completed], ["failed", q.failed]] : [["queue", "not started"]]);
      $("workers").textContent = s.workers.busy + " / " + s.workers.max;
      var best = $("best");
      best.textContent = "";
      if (!s.best) {
        best.appendChild(el("p", "none yet", "note"));
      } else {
        best.appendChild(el("p", s.best.name, "big"));
        var params = s.best.parameters || {};
        best.appendChild(el("p", Object.keys(params).map(function (k) {
          return k + "=" + params[k]; }).join(", "), "code"));
        var m = s.best.metrics || {};
        var dl = el("dl", null, "kv");
        kv(dl, [["gate score", num(s.best.gate_score)], ["Sharpe", num(m.sharpe_ratio)],
          ["max drawdown", num(m.max_drawdown)], ["win rate", num(m.win_rate)],
          ["trades", num(m.num_trades)]]);
        best.appendChild(dl);
      }
      $("gate-def").textContent = s.gate_score_definition;
      var ol = $("decisions");
      ol.textContent = "";
      s.experiments.forEach(function (e) {
        var li = el("li");
        li.appendChild(el("span", "research " + e.research_iteration + ", strategy " +
          e.strategy_iteration + " (" + e.records + " records): ", "muted"));
        li.appendChild(el("span", e.decision || "running"));
        ol.appendChild(li);
      });
      var ul = $("lessons");
      ul.textContent = "";
      s.lessons.forEach(function (l) { ul.appendChild(el("li", l)); });
      var total = $("records-total");  // records are never removed: it only grows
      if (s.records.total >= Number(total.dataset.total)) {
        total.textContent = s.records.total;
        total.dataset.total = s.records.total;
      }
    }

    function drawRecords(page) {
      var tbody = document.querySelector("#records tbody");
      var first = seen === null;
      var now = {};
      tbody.textContent = "";
      page.rows.forEach(function (r) {
        now[r.seq] = 1;
        var tr = el("tr", null, !first && !seen[r.seq] ? "new" : "");
        var m = r.metrics || {};
        [r.seq, r.experiment_id + " / " + r.variant_id, r.sample === "holdout" ? "holdout" : "in-sample",
          r.strategy, r.parameters, num(r.gate_score), num(m.sharpe_ratio), num(m.max_drawdown),
          num(m.win_rate), num(m.num_trades), r.error ? "error: " + r.error : r.failed.join("; ")
        ].forEach(function (v, i) { tr.appendChild(el("td", v, i === 0 || (i >= 5 && i <= 9) ? "num" : "")); });
        if (r.gate_passed) tr.classList.add("pass");
        tbody.appendChild(tr);
      });
      seen = Object.assign(seen || {}, now);
      var last = Math.min(page.offset + page.rows.length, page.total);
      $("page-label").textContent = page.total ? (page.offset + 1) + "–" + last + " of " + page.total : "none yet";
      $("prev").disabled = page.offset <= 0;
      $("next").disabled = page.offset + page.limit >= page.total;
      view.total = page.total;
      var total = $("records-total");  // the page may be a poll newer than the summary
      if (!page.sample && page.total > Number(total.dataset.total)) {
        total.textContent = page.total;
        total.dataset.total = page.total;
      }
    }
    function loadRecords() {
      var q = "?offset=" + view.offset + "&limit=" + view.limit + "&sort=" + view.sort +
        (view.sample ? "&sample=" + view.sample : "");
      return getJSON(base + "/records" + q).then(drawRecords);
    }

    var quiet = 0;
    function poll() {
      getJSON(base + "/summary").then(function (s) {
        conn("");
        drawSummary(s);
        var changed = s.records.last_seq !== view.shownSeq;
        view.shownSeq = s.records.last_seq;
        quiet = changed || !FINAL[s.status] ? 0 : quiet + 1;
        var next = quiet > 2 ? 5000 : 1000;
        (changed ? loadRecords() : Promise.resolve()).then(
          function () { later(poll, next); }, function (e) { failed(e); later(poll, next); });
      }, function (e) { failed(e); later(poll, 1000); });
    }
    function reload() { loadRecords().catch(failed); }
    $("sort").addEventListener("change", function (e) { view.sort = e.target.value; view.offset = 0; reload(); });
    $("sample").addEventListener("change", function (e) { view.sample = e.target.value; view.offset = 0; reload(); });
    $("prev").addEventListener("click", function () { view.offset = Math.max(0, view.offset - view.limit); reload(); });
    $("next").addEventListener("click", function () { view.offset += view.limit; reload(); });
    poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.body.dataset.page;
    if (page === "index") indexPage();
    else if (page === "workflow") workflowPage(document.body.dataset.wid);
  });
})();
