/* Re-renders the health panel every few seconds from the server.
 *
 * Polled rather than pushed: health matters most when something is broken,
 * and the websocket path (channel layer, hub) is one of the things that can
 * break, so the panel must not depend on it. */
"use strict";

(function () {
  const panel = document.querySelector("[data-health]");
  const refresh = window.Trollama.refresher(panel);
  const every = Number(panel.dataset.every) * 1000;
  setInterval(function () {
    if (!document.hidden) refresh();
  }, every);
})();
