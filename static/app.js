// Longrun's only script: keep live pages honest when the WebSocket drops.
// While a socket is down, each job status inside it is swapped for its self-polling version
// (the same fragment, rendered with polling on); when the socket is back, pushes take over again.
(function () {
  "use strict";

  function liveContainer(evt) {
    var elt = evt.detail && (evt.detail.elt || (evt.detail.socketWrapper && evt.target));
    return (evt.target && evt.target.closest && evt.target.closest(".live")) || elt;
  }

  function setState(container, text, cls) {
    var label = container && container.querySelector(".ws-state");
    if (label) { label.textContent = text; label.className = "ws-state " + cls; }
  }

  function fallBackToPolling(container) {
    if (!container || container.dataset.polling === "1") return;
    container.dataset.polling = "1";
    container.querySelectorAll(".job-status[data-poll-url]").forEach(function (status) {
      if (["Succeeded", "Failed", "Cancelled"].indexOf(status.dataset.state) >= 0) return;
      htmx.ajax("GET", status.dataset.pollUrl, { target: "#" + status.id, swap: "outerHTML" });
    });
  }

  document.addEventListener("htmx:wsOpen", function (evt) {
    var container = liveContainer(evt);
    if (container) container.dataset.polling = "0";
    setState(container, "live", "ok");
  });
  document.addEventListener("htmx:wsClose", function (evt) {
    var container = liveContainer(evt);
    setState(container, "connection lost — polling until it is back", "warn");
    fallBackToPolling(container);
  });
  document.addEventListener("htmx:wsError", function (evt) {
    fallBackToPolling(liveContainer(evt));
  });

  // Errors htmx does not swap (4xx/5xx other than 422): show the problem's detail, readably.
  document.addEventListener("htmx:responseError", function (evt) {
    var box = document.getElementById("request-error");
    if (!box) return;
    var text = "The request failed (" + evt.detail.xhr.status + ").";
    try { text = JSON.parse(evt.detail.xhr.responseText).detail || text; } catch (e) { /* not JSON */ }
    box.textContent = text;
    box.hidden = false;
    setTimeout(function () { box.hidden = true; }, 8000);
  });
})();
