/* The live requests table: rows from the server's snapshot, then updated by
 * events from /ws/events/. Filters are the same on both sides: the server
 * filters the snapshot (URL query), this script filters rows events bring. */
"use strict";

(function () {
  const T = window.Trollama;
  const table = document.querySelector("[data-requests]");
  const body = table.querySelector("tbody");
  const empty = document.querySelector("[data-empty]");
  const form = document.querySelector("[data-filters]");
  const indicator = document.querySelector("[data-connection]");
  const detailUrl = table.dataset.detailUrl; // ends in /0/, like threadUrl
  const threadUrl = table.dataset.threadUrl;
  const WAITING = ["queued", "held"];
  const FINISHED = ["done", "failed", "cancelled"];
  const KEEP = 100;

  let rows = new Map();

  function filters() {
    const data = new FormData(form);
    return {
      status: (data.get("status") || "").toString(),
      route: (data.get("route") || "").toString(),
      user: (data.get("user") || "").toString().trim().toLowerCase(),
    };
  }

  function query() {
    const params = new URLSearchParams();
    const f = filters();
    for (const key of ["status", "route", "user"]) if (f[key]) params.set(key, f[key]);
    const text = params.toString();
    return text ? "?" + text : "";
  }

  function matches(row, f) {
    if (f.status === "active" && FINISHED.includes(row.status)) return false;
    if (f.status && f.status !== "active" && row.status !== f.status) return false;
    if (f.route && row.route !== f.route) return false;
    if (f.user) {
      const names = ((row.user || "") + "\n" + (row.username || "")).toLowerCase();
      if (!names.includes(f.user)) return false;
    }
    return true;
  }

  function isFiltered() {
    const f = filters();
    return Boolean(f.status || f.route || f.user);
  }

  function order(a, b) {
    const aDone = FINISHED.includes(a.status), bDone = FINISHED.includes(b.status);
    if (aDone !== bDone) return aDone ? 1 : -1;
    return (T.parseTime(b.queued_at) - T.parseTime(a.queued_at)) || (b.id - a.id);
  }

  function tokensPerSecond(row, now) {
    if (row.completion_tokens && row.first_token_at && row.finished_at) {
      const seconds = (T.parseTime(row.finished_at) - T.parseTime(row.first_token_at)) / 1000;
      return seconds > 0 ? (row.completion_tokens / seconds).toFixed(1) : "—";
    }
    if (row.liveChars && row.firstDeltaAt && now > row.firstDeltaAt) {
      return "≈" + (row.liveChars / 4 / ((now - row.firstDeltaAt) / 1000)).toFixed(1);
    }
    return "—";
  }

  function tokensOut(row) {
    if (row.completion_tokens !== null && row.completion_tokens !== undefined) return T.number(row.completion_tokens);
    if (row.liveChars) return "≈" + T.number(Math.round(row.liveChars / 4));
    return "—";
  }

  function linkCell(tr, text, template, id, className) {
    const td = document.createElement("td");
    const link = document.createElement("a");
    link.href = template.replace(/\/0\/$/, "/" + id + "/");
    link.textContent = text;
    td.appendChild(link);
    if (className) td.className = className;
    tr.appendChild(td);
  }

  function cell(tr, text, className) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined || text === "" ? "—" : text;
    if (className) td.className = className;
    tr.appendChild(td);
    return td;
  }

  function render() {
    const now = Date.now();
    const f = filters();
    const visible = Array.from(rows.values()).filter(function (row) { return matches(row, f); }).sort(order);
    const fragment = document.createDocumentFragment();
    for (const row of visible) {
      const tr = document.createElement("tr");
      tr.dataset.requestId = row.id;
      tr.dataset.status = row.status;
      linkCell(tr, row.id, detailUrl, row.id);
      cell(tr, row.user);
      linkCell(tr, row.thread, threadUrl, row.thread_id, "thread");
      cell(tr, row.route);
      cell(tr, row.model);
      cell(tr, row.host);
      const status = cell(tr, row.status + (row.phase && row.phase !== row.status ? " · " + row.phase.replace("_", " ") : ""), "status");
      status.dataset.status = row.status;
      cell(tr, row.position, "num");
      const end = row.finished_at ? T.parseTime(row.finished_at) : now;
      cell(tr, T.duration(end - T.parseTime(row.queued_at)), "num");
      cell(tr, T.number(row.prompt_tokens), "num");
      cell(tr, tokensOut(row), "num");
      cell(tr, tokensPerSecond(row, now), "num");
      fragment.appendChild(tr);
    }
    body.replaceChildren(fragment);
    empty.hidden = visible.length > 0;
  }

  function trim() {
    if (rows.size <= KEEP) return;
    const oldest = Array.from(rows.values()).sort(order).slice(KEEP);
    for (const row of oldest) rows.delete(row.id);
  }

  /* Someone left the queue: everyone queued after them moves up one place. */
  function leftQueue(row) {
    for (const other of rows.values()) {
      if (other.position && WAITING.includes(other.status) && T.parseTime(other.queued_at) >= T.parseTime(row.queued_at) && other.id !== row.id) {
        other.position = Math.max(1, other.position - 1);
      }
    }
  }

  function upsert(summary) {
    const previous = rows.get(summary.id);
    const row = Object.assign({}, previous || {}, summary);
    if (previous && WAITING.includes(previous.status) && !WAITING.includes(row.status)) leftQueue(row);
    rows.set(row.id, row);
    return row;
  }

  const handlers = {
    sync: function (message) {
      rows = new Map(message.requests.map(function (row) { return [row.id, row]; }));
    },
    "request.queued": function (event) {
      upsert(Object.assign({}, event.request, { position: event.position }));
      trim();
    },
    "request.status": function (event) {
      if (!rows.has(event.request_id)) return "unknown";
      const changes = { status: event.status, phase: event.phase };
      if (!WAITING.includes(event.status)) changes.position = null;
      if (event.model) changes.model = event.model;
      if (event.route) changes.route = event.route;
      if (event.reset) Object.assign(changes, { liveChars: 0, firstDeltaAt: null });
      upsert(Object.assign({ id: event.request_id }, changes));
    },
    "request.delta": function (event) {
      const row = rows.get(event.request_id);
      if (!row) return "unknown";
      row.liveChars = event.offset + T.codePoints(event.text);
      if (!row.firstDeltaAt) row.firstDeltaAt = Date.now();
    },
    "request.done": function (event) { upsert(event.request); },
    "request.failed": function (event) { upsert(event.request); },
    "request.cancelled": function (event) { upsert(event.request); },
  };

  const socket = T.follow(function () { return "/ws/events/" + query(); }, function (message) {
    const handler = handlers[message.type];
    if (!handler) return;
    // An event about a request we never saw, with nothing filtered out: we missed something.
    if (handler(message) === "unknown" && !isFiltered()) socket.send({ type: "sync" });
    render();
  }, indicator);

  form.addEventListener("change", function () {
    history.replaceState(null, "", location.pathname + query());
    render();
    socket.reconnect(); // the snapshot on connect is filtered by the server the same way
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    form.dispatchEvent(new Event("change"));
  });

  const initial = JSON.parse(document.getElementById("initial-requests").textContent);
  handlers.sync({ requests: initial });
  render();
  setInterval(render, 1000); // elapsed times tick
})();
