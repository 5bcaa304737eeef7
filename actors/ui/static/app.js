// ca-actors dashboard: live parts over server-sent events. Each SSE message id is the event's stream
// sequence; a reconnect resumes after the last one seen (Last-Event-ID, or ?after= when reopened here),
// and a message already seen is ignored, so nothing is lost or shown twice.
(function () {
  "use strict";
  const conn = () => document.getElementById("conn");

  function setConn(state) {
    const el = conn();
    if (el) { el.className = "conn " + state; el.title = "live updates: " + state; }
  }

  // One resumable stream: `onMessage(name, data)` for each new message.
  function LiveStream(baseUrl, names, onMessage) {
    this.lastSeq = 0;
    const u = new URL(baseUrl, location.href);
    if (u.searchParams.get("after")) this.lastSeq = parseInt(u.searchParams.get("after"), 10) || 0;
    u.searchParams.delete("after");
    this.base = u.pathname + (u.search || "");
    this.names = names;
    this.onMessage = onMessage;
    this.source = null;
    this.open();
  }
  LiveStream.prototype.url = function () {
    return this.base + (this.base.indexOf("?") >= 0 ? "&" : "?") + "after=" + this.lastSeq;
  };
  LiveStream.prototype.open = function () {
    const self = this;
    const source = new EventSource(this.url());
    this.source = source;
    source.onopen = function () { setConn("live"); };
    source.onerror = function () {
      setConn("reconnecting");
      if (source.readyState === EventSource.CLOSED && self.source === source) {
        setTimeout(function () { if (self.source === source) self.open(); }, 1000);
      }
    };
    this.names.forEach(function (name) {
      source.addEventListener(name, function (msg) {
        const seq = parseInt(msg.lastEventId, 10);
        if (!(seq > self.lastSeq)) return; // already shown
        self.lastSeq = seq;
        self.onMessage(name, JSON.parse(msg.data), seq);
      });
    });
  };
  // Drop the connection (as a network cut would) and open a new one that resumes after lastSeq.
  LiveStream.prototype.close = function () {
    if (this.source) { this.source.close(); this.source = null; }
    setConn("closed");
  };
  LiveStream.prototype.reopen = function () { this.close(); this.open(); };

  function fragment(html) {
    const t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }

  function runsTable(root) {
    return new LiveStream(root.dataset.live, ["run"], function (_name, d) {
      const body = document.getElementById("runs-body");
      if (!body) return;
      const existing = document.getElementById("run-" + d.run_id);
      const row = fragment(d.html);
      if (existing) {
        // Keep what the history knew (cost), take the new status, duration and error.
        existing.replaceWith(row);
      } else {
        const first = root.dataset.firstPage === "yes";
        const flow = root.dataset.filterFlow, status = root.dataset.filterStatus;
        if (!first || (flow && flow !== d.flow) || (status && status !== d.status)) return;
        body.prepend(row);
        const none = document.getElementById("no-runs");
        if (none) none.remove();
      }
      document.body.dispatchEvent(new CustomEvent("run-changed"));
    });
  }

  function runPage(root) {
    const list = document.getElementById("events");
    const count = document.getElementById("ev-count");
    // What tests (and curious people in the console) can read: every sequence shown, every status change.
    window.caSeen = [];
    window.caStatusLog = [];
    window.caArrivals = [];
    let n = 0;
    return new LiveStream(root.dataset.live, ["evt"], function (_name, d, seq) {
      window.caSeen.push(seq);
      window.caArrivals.push([seq, Date.now(), d.ts]);
      list.insertAdjacentHTML("beforeend", d.html);
      n += 1;
      if (count) count.textContent = "(" + n + ")";
      if (d.node && d.node_status) {
        const box = document.querySelector('#graph [data-node="' + CSS.escape(d.node) + '"]');
        if (box) {
          box.classList.remove("pending", "running", "done", "failed", "retrying", "waiting", "discarded");
          box.classList.add(d.node_status);
          box.dataset.status = d.node_status;
          window.caStatusLog.push([d.node, d.node_status]);
        }
        if (d.kind === "node.finished") document.body.dispatchEvent(new CustomEvent("step-done"));
        if (d.kind === "node.started" && d.from_node) {
          const edge = document.querySelector('#graph [data-edge="' + CSS.escape(d.from_node + ">" + d.node) + '"]');
          if (edge) edge.classList.add("taken");
        }
      }
      if (d.run_status) {
        const badge = document.getElementById("run-status");
        if (badge) { badge.textContent = d.run_status; badge.className = "badge " + d.run_status; }
        if (d.run_status !== "running") {
          const end = document.querySelector('#graph [data-node="END"]');
          if (end && d.run_status === "succeeded") end.classList.add("done");
          const cancel = document.getElementById("cancel");
          if (cancel) cancel.disabled = true;
          document.body.dispatchEvent(new CustomEvent("run-ended"));
        }
      }
    });
  }

  let followed = null;
  function start() {
    window.caLive = null;
    const run = document.getElementById("run-live");
    if (run) { window.caLive = runPage(run); return; }
    const table = document.getElementById("runs-table");
    if (table && table.dataset.live) { followed = table; window.caLive = runsTable(table); }
  }

  document.addEventListener("DOMContentLoaded", start);
  // A page of runs swapped in by htmx (filters, older): follow from its own point.
  document.addEventListener("htmx:afterSettle", function () {
    const table = document.getElementById("runs-table");
    if (table && table !== followed && table.dataset.live) {
      if (window.caLive) window.caLive.close();
      followed = table;
      window.caLive = runsTable(table);
    }
  });
})();
