// Live progress of running backups: each `[data-events]` element shows the
// bytes dumped and the rate from the server-sent events, and the page
// reloads when the backup ends so the history shows each destination's
// result. Without JavaScript the page refreshes itself while one runs.
(function () {
  "use strict";
  if (!window.EventSource) return;
  function human(n) {
    var units = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }
  document.querySelectorAll("[data-events]").forEach(function (el) {
    var source = new EventSource(el.dataset.events);
    source.addEventListener("progress", function (e) {
      var p = JSON.parse(e.data);
      el.textContent = p.status + ": " + human(p.bytes) + " at " + human(p.rate) + "/s ";
    });
    source.addEventListener("end", function () {
      source.close();
      window.location.reload();
    });
  });
})();
