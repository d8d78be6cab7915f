// Progressive enhancement only: every page works without this script.
// - Elements with data-refresh are re-fetched every 3 seconds (live status), or every
//   data-refresh-every milliseconds (the charts); with data-refresh-now, also at once
//   (the charts, which the detail page does not wait for).
// - A list with data-trends fetches its trend cells apart from its rows, at once and
//   every 30 seconds, and puts each VM's into its cell (td[data-trend]), again after
//   every refresh of the rows: the list never waits for metrics.
// - Forms with data-confirm ask before they post.
// - New import's picker counts and names the chosen VMs as boxes are ticked.
"use strict";
(function () {
  function get(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; });
  }
  function fillTrends(el) {
    if (!el.trends) { return; }
    el.querySelectorAll("td[data-trend]").forEach(function (td) {
      var vm = td.dataset.trend;
      var html = Object.prototype.hasOwnProperty.call(el.trends.byVm, vm) ? el.trends.byVm[vm] : el.trends.others;
      if (html !== undefined && td.innerHTML !== html) { td.innerHTML = html; }
    });
  }
  function trends(el) {
    get(el.dataset.trends).then(function (html) {
      if (html === null) { return; }
      var box = document.createElement("div");
      box.innerHTML = html;
      var byVm = {};
      box.querySelectorAll("[data-vm]").forEach(function (e) { byVm[e.dataset.vm] = e.innerHTML; });
      var others = box.querySelector("[data-vm-others]");
      el.trends = { byVm: byVm, others: others ? others.innerHTML : undefined };
      fillTrends(el);
    }).catch(function () { /* keep what is shown */ });
  }
  function refresh(el) {
    get(el.dataset.refresh)
      .then(function (html) {
        if (html !== null && html !== el.lastHtml) {
          el.lastHtml = html;
          el.innerHTML = html;
          fillTrends(el);
        }
      })
      .catch(function () { /* keep what is shown */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(function (el) {
      el.lastHtml = el.innerHTML;
      if (el.hasAttribute("data-refresh-now")) { refresh(el); }
      var every = parseInt(el.dataset.refreshEvery || "3000", 10);
      setInterval(function () { refresh(el); }, every > 0 ? every : 3000);
    });
    document.querySelectorAll("[data-trends]").forEach(function (el) {
      trends(el);
      setInterval(function () { trends(el); }, 30000);
    });
    document.querySelectorAll("form.picker-form").forEach(function (form) {
      var summary = form.querySelector("#chosen");
      form.addEventListener("change", function () {
        var chosen = [];
        form.querySelectorAll('input[name="vm"][data-name]').forEach(function (input) {
          if (input.type === "hidden" || input.checked) { chosen.push([input.value, input.dataset.name]); }
        });
        chosen.sort(function (a, b) { return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0; });
        var strong = document.createElement("strong");
        strong.textContent = chosen.length + " chosen";
        summary.replaceChildren(strong);
        if (chosen.length) { summary.append(": " + chosen.map(function (c) { return c[1]; }).join(", ")); }
      });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        if (!window.confirm(form.dataset.confirm)) { e.preventDefault(); }
      });
    });
  });
})();
