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

  // Errors: the server sends a readable message into #request-error; clear it after a while.
  // Anything that did not come that way (a proxy error page, a dropped connection) gets a plain one.
  function showError(text) {
    var box = document.getElementById("request-error");
    if (!box) return;
    if (text) box.textContent = text;
    clearTimeout(box._timer);
    box._timer = setTimeout(function () { box.textContent = ""; }, 10000);
  }
  document.addEventListener("htmx:responseError", function (evt) {
    var retargeted = evt.detail.xhr.getResponseHeader("HX-Retarget");
    showError(retargeted ? null : "The request failed (" + evt.detail.xhr.status + "); please try again.");
  });
  document.addEventListener("htmx:sendError", function () {
    showError("The server could not be reached; please check your connection and try again.");
  });
})();
