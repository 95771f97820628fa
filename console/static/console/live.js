/* Shared by the console's live pages: a websocket that reconnects, a
 * connection indicator, fragment refreshes and small formatters.
 *
 * Every (re)connection starts with a `sync` message from the server, so a
 * page that was offline reloads its state from the database before it
 * follows events again. */
"use strict";

window.Trollama = (function () {
  const MAX_BACKOFF_MS = 15000;

  function wsUrl(path) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + path;
  }

  function setIndicator(indicator, state, text) {
    if (!indicator) return;
    indicator.dataset.state = state;
    indicator.textContent = text;
  }

  /* Opens `path()` (a function, so the URL can change between attempts) and
   * calls onMessage with each decoded message. Returns {send, reconnect}. */
  function follow(path, onMessage, indicator) {
    let socket = null;
    let backoff = 1000;
    let timer = null;

    function connect() {
      clearTimeout(timer);
      setIndicator(indicator, "connecting", "Connecting…");
      socket = new WebSocket(wsUrl(path()));
      socket.addEventListener("open", function () {
        backoff = 1000;
        setIndicator(indicator, "live", "Live");
      });
      socket.addEventListener("message", function (message) {
        onMessage(JSON.parse(message.data));
      });
      socket.addEventListener("close", function (event) {
        if (event.target !== socket) return; // an old socket we replaced
        if (event.code === 4401 || event.code === 4403) {
          setIndicator(indicator, "offline", "Signed out: reload the page to sign in again");
          return;
        }
        if (event.code === 4404) {
          setIndicator(indicator, "offline", "This request no longer exists");
          return;
        }
        const seconds = Math.round(backoff / 1000);
        setIndicator(indicator, "offline", "Disconnected: retrying in " + seconds + " s");
        timer = setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      });
    }

    connect();
    return {
      send: function (message) {
        if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
      },
      reconnect: function () {
        const old = socket;
        socket = null;
        if (old) old.close();
        connect();
      },
    };
  }

  /* Replaces `element`'s content with the HTML the server renders at its
   * data-url. Concurrent calls collapse into one request in flight. */
  function refresher(element) {
    let running = null;
    let again = false;
    async function run() {
      try {
        const response = await fetch(element.dataset.url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
        if (response.ok) element.innerHTML = await response.text();
        element.dataset.stale = response.ok ? "false" : "true";
      } catch (error) {
        element.dataset.stale = "true";
      }
    }
    return function refresh() {
      if (running) {
        again = true;
        return running;
      }
      running = run().finally(function () {
        running = null;
        if (again) {
          again = false;
          refresh();
        }
      });
      return running;
    };
  }

  function duration(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return "—";
    const seconds = Math.max(0, ms / 1000);
    if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + Math.floor(seconds % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function number(value) {
    return value === null || value === undefined ? "—" : Number(value).toLocaleString("en-US");
  }

  /* Length in code points: the unit of the server's delta offsets (Python's len). */
  function codePoints(text) {
    let count = 0;
    for (const _ of text) count++; // eslint-disable-line no-unused-vars
    return count;
  }

  function skipCodePoints(text, n) {
    return Array.from(text).slice(n).join("");
  }

  function parseTime(value) {
    return value ? Date.parse(value) : null;
  }

  return { follow, refresher, duration, number, codePoints, skipCodePoints, parseTime };
})();
