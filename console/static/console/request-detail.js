/* One request, live: its answer streams in from /ws/requests/<id>/ and the
 * server-rendered facts (timeline, routing, usage, error) are refetched when
 * its status changes.
 *
 * Each delta says at which offset (in code points) its text starts. A delta
 * we already have is trimmed; one that starts past our end means we missed
 * something: it is kept aside and we ask the server for the whole state. The
 * server's copy of a running answer is saved every few seconds, so it may not
 * reach the kept deltas yet; then we ask again a little later. */
"use strict";

(function () {
  const T = window.Trollama;
  const root = document.querySelector("[data-request]");
  const requestId = Number(root.dataset.request);
  const answer = root.querySelector("[data-answer]");
  const phase = root.querySelector("[data-phase]");
  const refreshFacts = T.refresher(root.querySelector("[data-facts]"));
  const labels = JSON.parse(document.getElementById("phase-labels").textContent);

  let text = answer.textContent;
  let length = T.codePoints(text);
  let attempt = null;
  let model = "";
  let pending = []; // deltas past our end, waiting for a snapshot that reaches them
  let resyncTimer = null;
  const RESYNC_RETRY_MS = 1500;

  function show() {
    answer.textContent = text;
  }

  function showPhase(status, name) {
    const finished = ["done", "failed", "cancelled"].includes(status);
    const label = finished ? "" : (labels[name] || (status === "queued" ? "Queued…" : ""));
    phase.textContent = label.replace("{model}", model || "the model").replace("{reason}", "");
  }

  function replaceText(content) {
    text = content || "";
    length = T.codePoints(text);
    show();
  }

  function append(delta) {
    const fresh = T.skipCodePoints(delta.text, length - delta.offset);
    if (!fresh) return;
    text += fresh;
    length += T.codePoints(fresh);
  }

  function applyPending() {
    pending = pending.filter(function (delta) { return delta.attempt === attempt; });
    pending.sort(function (a, b) { return a.offset - b.offset; });
    while (pending.length && pending[0].offset <= length) append(pending.shift());
    show();
    if (pending.length) resync(RESYNC_RETRY_MS);
  }

  function resync(delay) {
    if (resyncTimer !== null) return;
    resyncTimer = setTimeout(function () {
      resyncTimer = null;
      socket.send({ type: "sync" });
    }, delay);
  }

  const handlers = {
    sync: function (message) {
      const request = message.request;
      attempt = request.attempts;
      model = request.model || "";
      replaceText(request.content);
      if (["done", "failed", "cancelled"].includes(request.status)) pending = [];
      applyPending();
      showPhase(request.status, request.phase);
      refreshFacts();
    },
    "request.status": function (event) {
      if (event.model) model = event.model;
      if (event.reset || (attempt !== null && event.attempt > attempt)) replaceText("");
      if (event.attempt) attempt = event.attempt;
      showPhase(event.status, event.phase);
      refreshFacts();
    },
    "request.delta": function (event) {
      if (attempt !== null && event.attempt !== attempt) {
        if (event.attempt < attempt) return; // a late delta of an abandoned attempt
        attempt = event.attempt;
        replaceText("");
      }
      if (event.offset > length) {
        pending.push(event);
        resync(0);
        return;
      }
      append(event);
      applyPending();
    },
    "request.done": function (event) {
      pending = [];
      replaceText(event.content); // the stored answer, exactly
      showPhase("done", "");
      refreshFacts();
    },
    "request.failed": function () {
      showPhase("failed", "");
      refreshFacts();
    },
    "request.cancelled": function () {
      showPhase("cancelled", "");
      refreshFacts();
    },
  };

  const socket = T.follow(function () { return "/ws/requests/" + requestId + "/"; }, function (message) {
    if (message.request_id !== undefined && message.request_id !== requestId) return;
    const handler = handlers[message.type];
    if (handler) handler(message);
  }, document.querySelector("[data-connection]"));
})();
