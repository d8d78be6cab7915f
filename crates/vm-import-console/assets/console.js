// Progressive enhancement only: every page works without this script.
// - Elements with data-refresh are re-fetched every 3 seconds (live status), or every
//   data-refresh-every milliseconds (the charts); with data-refresh-now, also at once
//   (the charts, which the detail page does not wait for).
// - Forms with data-confirm ask before they post.
"use strict";
(function () {
  function refresh(el) {
    fetch(el.dataset.refresh, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null && html !== el.innerHTML) { el.innerHTML = html; } })
      .catch(function () { /* keep what is shown */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(function (el) {
      if (el.hasAttribute("data-refresh-now")) { refresh(el); }
      var every = parseInt(el.dataset.refreshEvery || "3000", 10);
      setInterval(function () { refresh(el); }, every > 0 ? every : 3000);
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        if (!window.confirm(form.dataset.confirm)) { e.preventDefault(); }
      });
    });
  });
})();
