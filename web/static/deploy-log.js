// Live deployment log: appends lines from the server-sent events stream to
// the log already rendered, and updates the status badge when it ends.
// Without JavaScript the page refreshes itself while the deployment runs.
(function () {
  "use strict";
  var log = document.getElementById("deploy-log");
  if (!log || !log.dataset.live || !window.EventSource) return;
  var after = log.dataset.after || "0";
  var source = new EventSource(log.dataset.live + "?after=" + encodeURIComponent(after));
  var seen = parseInt(after, 10) || 0;
  source.addEventListener("line", function (e) {
    var seq = parseInt(e.lastEventId, 10) || 0;
    if (seq <= seen) return;
    seen = seq;
    var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(document.createTextNode(e.data + "\n"));
    if (atBottom) log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("end", function (e) {
    source.close();
    var badge = document.getElementById("deployment-status");
    if (badge) {
      badge.textContent = e.data;
      badge.className = "status deploy-" + e.data;
    }
    log.dataset.ended = e.data;
  });
})();
