// fluidedge web GUI: the only script the pages load (served by the daemon; CSP script-src 'self').
// 1. Live values: <main data-live="URL"> opens a server-sent event stream; each event is a JSON
//    object {DOM id: text} of the values that changed, written into the elements with those ids.
// 2. Confirmation: a submit button with data-confirm asks before its form is sent.
// Pages work without it (forms are plain POSTs); only the live updates need it.
"use strict";

(function () {
  function connect(main) {
    var url = main.getAttribute("data-live");
    var state = document.getElementById("live-state");
    var shapeHolder = document.getElementById("tof-shape");
    var source = new EventSource(url);
    source.onopen = function () {
      if (state) state.textContent = "live: connected";
    };
    source.onerror = function () {
      if (state) state.textContent = "live: reconnecting";
      // The browser retries a dropped stream by itself, but gives up on an error answer (a
      // daemon restarting, a session that ended): then retry from here, a second later.
      if (source.readyState === EventSource.CLOSED) {
        window.setTimeout(function () {
          connect(main);
        }, 1000);
      }
    };
    source.onmessage = function (event) {
      var changes;
      try {
        changes = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      Object.keys(changes).forEach(function (id) {
        var text = changes[id];
        if (id === "_shape_tof") {
          if (shapeHolder && shapeHolder.getAttribute("data-shape") !== text) {
            var notice = document.getElementById("shape-notice");
            if (notice) notice.hidden = false;
          }
          return;
        }
        if (id.charAt(0) === "_") return;
        var element = document.getElementById(id);
        if (element && element.textContent !== text) {
          element.textContent = text;
          element.classList.remove("changed");
          void element.offsetWidth; // restart the highlight animation
          element.classList.add("changed");
        }
      });
      if (state) state.textContent = "live: updated " + new Date().toLocaleTimeString();
    };
    window.addEventListener("pagehide", function () {
      source.close();
    });
  }

  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var question = button && button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", function () {
    var main = document.querySelector("main[data-live]");
    if (main && window.EventSource) connect(main);
  });
})();
