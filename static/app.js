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
    settle(document);
  });
  document.addEventListener("htmx:wsClose", function (evt) {
    var container = liveContainer(evt);
    setState(container, "connection lost — polling until it is back", "warn");
    fallBackToPolling(container);
  });
  document.addEventListener("htmx:wsError", function (evt) {
    fallBackToPolling(liveContainer(evt));
  });

  // Timestamps arrive in UTC (exact instant in the title); show them in the reader's own time zone.
  var FORMATS = {
    full: { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" },
    time: { hour: "2-digit", minute: "2-digit", second: "2-digit" }
  };
  function localise(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("time[data-local]").forEach(function (t) {
      var when = new Date(t.getAttribute("datetime"));
      if (isNaN(when)) return;
      t.textContent = when.toLocaleString([], FORMATS[t.dataset.local] || FORMATS.full);
      t.removeAttribute("data-local");
    });
  }

  // Between two events of a running job its elapsed time still moves: tick it every second.
  function formatDuration(seconds) {
    if (seconds < 60) return seconds.toFixed(1) + " s";
    var minutes = Math.floor(seconds / 60), secs = Math.floor(seconds % 60);
    if (minutes < 60) return minutes + " min " + (secs < 10 ? "0" : "") + secs + " s";
    var hours = Math.floor(minutes / 60), mins = minutes % 60;
    return hours + " h " + (mins < 10 ? "0" : "") + mins + " min";
  }
  setInterval(function () {
    document.querySelectorAll(".elapsed[data-since]").forEach(function (span) {
      var since = new Date(span.dataset.since);
      if (!isNaN(since)) span.textContent = formatDuration(Math.max(0, (Date.now() - since) / 1000)) + " elapsed";
    });
  }, 1000);

  // A job's state change is announced once (its status redraws on every progress step: that would be noise).
  var announced = {};
  function announce() {
    var box = document.getElementById("announcer");
    document.querySelectorAll(".job-status[data-state]").forEach(function (status) {
      var state = status.dataset.state, before = announced[status.id];
      announced[status.id] = state;
      if (box && before !== undefined && before !== state) {
        var report = status.querySelector(".report");
        box.textContent = (report ? report.textContent + " job: " : "Job: ") + state;
        if (FINAL.indexOf(state) >= 0) notifyEnd(status, report ? report.textContent : "Job", state);
      }
    });
  }

  // Desktop notifications, opt-in per browser: a job on this page ends while the tab is hidden (a visible tab
  // shows and announces it already). The socket that redrew the status is the one already open: no polling.
  var FINAL = ["Succeeded", "Failed", "Cancelled"], OPT_IN = "longrun.notify";
  function notifying() {
    return "Notification" in window && Notification.permission === "granted" && localStorage.getItem(OPT_IN) === "1";
  }
  function notifyEnd(status, report, state) {
    if (!document.hidden || !notifying()) return;
    var url = status.dataset.pollUrl;
    var note = new Notification(report + " " + state.toLowerCase(), {body: "Job " + url.split("/").pop(), tag: status.id});
    note.onclick = function () { window.focus(); if (url) location.href = url; };
  }
  function showToggle(button) {
    var on = notifying();
    button.textContent = on ? "Desktop alerts: on" : "Desktop alerts: off";
    button.setAttribute("aria-pressed", on ? "true" : "false");
  }
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("notify-toggle");
    if (!button || !("Notification" in window)) return;
    button.hidden = false;
    showToggle(button);
    button.addEventListener("click", function () {
      if (notifying()) { localStorage.removeItem(OPT_IN); showToggle(button); return; }
      Notification.requestPermission().then(function (permission) {
        if (permission === "granted") localStorage.setItem(OPT_IN, "1");
        else showError("Desktop alerts are blocked for this site in the browser's settings.");
        showToggle(button);
      });
    });
  });

  // Once the job has ended nothing more will arrive: the "live" tag goes.
  function settle(root) {
    announce();
    document.querySelectorAll(".live").forEach(function (container) {
      var status = container.querySelector(".job-status");
      if (status && ["Succeeded", "Failed", "Cancelled"].indexOf(status.dataset.state) >= 0) {
        setState(container, "finished", "done");
      }
    });
    localise(root || document);
  }
  document.addEventListener("DOMContentLoaded", function () { settle(document); });
  document.addEventListener("htmx:afterSettle", function (evt) { settle(evt.target); });
  document.addEventListener("htmx:oobAfterSwap", function (evt) { settle(evt.target); });
  document.addEventListener("htmx:wsAfterMessage", function () { settle(document); });

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
