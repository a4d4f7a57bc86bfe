// The live view: queue tiles, the agent grid, waiting contacts, and charts.
//
// State comes from the supervisor socket (a snapshot, then queue and agent
// events) and is kept here by queue name and agent id. Tiles are rebuilt only
// on a language switch; events and the one-second ticker update their text in
// place, and rows that hold controls (agents, waiting contacts) are kept
// across updates so a supervisor's focus and choice survive them.

import { api, query } from "../common/api.js";
import { h, fill } from "../common/dom.js";
import { duration, label, percent, t, time } from "../common/i18n.js";
import { barLineChart, pairedBars } from "./charts.js";

/**
 * When a figure turns amber ("warn") or red ("bad"). Service level is judged
 * against each queue's own goal (sl_target_percent) and the longest wait
 * against its own threshold (sl_threshold_seconds), since a queue promising
 * 90 % in 10 s is in trouble sooner than one promising 80 % in 60 s. The
 * abandonment points are the usual alarm levels of inbound service; change
 * them here, nowhere else.
 */
export const THRESHOLDS = {
  // Red once service level is this far (a fraction) below the goal; amber below it at all.
  slBadShortfall: 0.1,
  // Longest wait, as multiples of the queue's threshold: amber past 1x, red past 2x.
  longestWaitWarn: 1,
  longestWaitBad: 2,
  // Share of contacts abandoned (last hour).
  abandonWarn: 0.05,
  abandonBad: 0.1,
};

const STATES = ["available", "away", "offline"];
// How a supervisor may be on an agent's call (the supervisor socket's "monitor").
const MONITOR_MODES = ["listen", "whisper", "barge"];
const PRESENCE_SHOWN = ["available", "busy", "wrapup", "away"];
// How often the "today" chart reloads: the server saves interval totals every minute.
const TODAY_REFRESH_MS = 60_000;
const SLOT_MS = 15 * 60_000;
// 08:00, in 15-minute slots.
const QUIET_START = 32;

const worst = (...levels) =>
  levels.includes("bad") ? "bad" : levels.includes("warn") ? "warn" : "ok";

function seconds(value) {
  return value == null ? "—" : duration(value);
}

export class Board {
  /**
   * @param {HTMLElement} root
   * @param {{send: (msg) => Promise<any>, toast: (text: string) => void,
   *          errorText: (error) => string}} actions
   */
  constructor(root, actions) {
    this.root = root;
    this.actions = actions;
    this.queues = new Map();
    this.agents = new Map();
    this.queueInfo = new Map();
    this.offset = 0;
    this.today = null;
    this.tileRefs = new Map();
    this.agentRows = new Map();
    this.waitingRows = new Map();
    // Contact id -> this supervisor's session on that call: {state, mode}.
    this.monitors = new Map();
    this.staffingDue = false;
    this.build();
  }

  // -- layout ------------------------------------------------------------------

  build() {
    this.tiles = h("div", { class: "tiles", id: "tiles" });
    this.agentSummary = h("p", { class: "muted summary", id: "agent-summary" });
    this.agentBody = h("tbody", { id: "agent-rows" });
    this.agentEmpty = h("p", { class: "muted", id: "agents-empty" });
    this.waitingBody = h("tbody", { id: "waiting-rows" });
    this.waitingNote = h("div", { class: "muted small" });
    this.waitingEmpty = h("p", { class: "muted", id: "waiting-empty" });
    this.todayChart = h("div", { class: "chart-box", id: "chart-today" });
    this.staffingChart = h("div", { class: "chart-box", id: "chart-staffing" });
    this.layout();
  }

  layout() {
    const header = (key, id) => h("h2", { id, text: t(key) });
    fill(
      this.root,
      h(
        "section",
        { class: "queues", "aria-labelledby": "queues-title" },
        h("h2", { class: "visually-hidden", id: "queues-title", text: t("wb.queues") }),
        this.tiles,
      ),
      h(
        "div",
        { class: "lower" },
        h(
          "section",
          { class: "card agents", "aria-labelledby": "agents-title" },
          h("div", { class: "panel-head" }, header("wb.agents", "agents-title"), this.agentSummary),
          h(
            "div",
            { class: "scroll" },
            h(
              "table",
              { class: "grid", id: "agent-grid" },
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  ["col_agent", "col_state", "col_time", "col_contacts", "col_handled", "col_change"].map(
                    (key) => h("th", { scope: "col", text: t(`wb.${key}`) }),
                  ),
                ),
              ),
              this.agentBody,
            ),
            this.agentEmpty,
          ),
        ),
        h(
          "div",
          { class: "side" },
          h(
            "section",
            { class: "card waiting", "aria-labelledby": "waiting-title" },
            header("wb.waiting_contacts", "waiting-title"),
            h(
              "div",
              { class: "scroll" },
              h(
                "table",
                { class: "grid", id: "waiting-grid" },
                h(
                  "thead",
                  {},
                  h(
                    "tr",
                    {},
                    ["col_customer", "col_queue", "col_waited", "col_move"].map((key) =>
                      h("th", { scope: "col", text: t(`wb.${key}`) }),
                    ),
                  ),
                ),
                this.waitingBody,
              ),
              this.waitingEmpty,
              this.waitingNote,
            ),
          ),
          h(
            "section",
            { class: "card", "aria-labelledby": "today-title" },
            header("wb.chart_today", "today-title"),
            this.todayChart,
          ),
          h(
            "section",
            { class: "card", "aria-labelledby": "staffing-title" },
            header("wb.chart_staffing", "staffing-title"),
            this.staffingChart,
          ),
        ),
      ),
    );
  }

  /** After a language switch: everything built with t() is built again. */
  relabel() {
    this.tileRefs.clear();
    this.agentRows.clear();
    this.waitingRows.clear();
    this.agentBody.replaceChildren();
    this.waitingBody.replaceChildren();
    this.layout();
    this.renderAll();
  }

  // -- data in -------------------------------------------------------------------

  serverNow() {
    return Date.now() + this.offset;
  }

  /**
   * Follow the server's clock, which the "since" times are on. An event is
   * never stamped later than the server's now, and replayed ones are older,
   * so the largest offset seen is the best; a snapshot's time is the now.
   */
  clock(at, fresh = false) {
    if (!at) return;
    const offset = Date.parse(at) - Date.now();
    this.offset = fresh ? offset : Math.max(this.offset, offset);
  }

  setQueueInfo(items) {
    this.queueInfo = new Map(items.map((q) => [q.name, q]));
    this.renderAll();
  }

  snapshot(message) {
    this.clock(message.at, true);
    this.queues = new Map(message.queues.map((q) => [q.queue, { ...q, at: message.at }]));
    this.agents = new Map(message.agents.map((a) => [a.agent_id, a]));
    for (const [id, row] of this.agentRows) {
      if (!this.agents.has(id)) {
        row.tr.remove();
        this.agentRows.delete(id);
      }
    }
    this.renderAll();
  }

  queue(message) {
    this.clock(message.at);
    this.queues.set(message.queue, message);
    this.renderTiles();
    this.renderWaiting();
    this.staffingSoon();
  }

  agent(message) {
    this.clock(message.at);
    this.agents.set(message.agent_id, message);
    this.renderAgents();
  }

  /** A (re)connection: the server tells again of the sessions still in progress. */
  forgetMonitors() {
    this.monitors.clear();
    for (const row of this.agentRows.values()) this.updateMonitorControls(row);
  }

  /** This supervisor's listening in on a call rang, connected, changed mode or ended. */
  monitor(message) {
    if (message.state === "ended") {
      this.monitors.delete(message.contact_id);
      if (message.reason !== "stopped") {
        this.actions.toast(label("wb.monitor_ended", message.reason));
      }
    } else {
      this.monitors.set(message.contact_id, { state: message.state, mode: message.mode });
    }
    for (const row of this.agentRows.values()) this.updateMonitorControls(row);
  }

  displayName(queue) {
    const info = this.queueInfo.get(queue);
    // The router's own queue (calls for one agent) has a translated name.
    return (info && info.display_name) || label("queue", queue);
  }

  // -- rendering ------------------------------------------------------------------

  renderAll() {
    this.renderTiles();
    this.renderAgents();
    this.renderWaiting();
    this.renderStaffing();
    this.renderToday();
  }

  tick() {
    for (const [name, refs] of this.tileRefs) this.updateTile(refs, this.queues.get(name));
    const now = this.serverNow();
    for (const el of this.root.querySelectorAll("[data-since]")) {
      el.textContent = duration((now - Date.parse(el.dataset.since)) / 1000);
    }
  }

  renderTiles() {
    const names = [...this.queues.keys()].sort();
    if (!names.length) {
      fill(this.tiles, h("p", { class: "muted card", text: t("wb.no_queues") }));
      this.tileRefs.clear();
      return;
    }
    for (const name of [...this.tileRefs.keys()]) {
      if (!this.queues.has(name)) {
        this.tileRefs.get(name).el.remove();
        this.tileRefs.delete(name);
      }
    }
    if (!this.tileRefs.size) this.tiles.replaceChildren();
    names.forEach((name, index) => {
      let refs = this.tileRefs.get(name);
      if (!refs) {
        refs = this.buildTile(name);
        this.tileRefs.set(name, refs);
        this.tiles.insertBefore(refs.el, this.tiles.children[index] || null);
      }
      this.updateTile(refs, this.queues.get(name));
    });
  }

  buildTile(name) {
    const value = (figure) => h("span", { class: "value", dataset: { figure } });
    const refs = {
      title: h("h3", { class: "tile-title" }),
      subtitle: h("span", { class: "muted tile-name" }),
      waiting: value("waiting"),
      longest: value("longest-wait"),
      sl: value("service-level"),
      goal: h("span", { class: "sub" }),
      asa: h("dd", { dataset: { figure: "asa" } }),
      aht: h("dd", { dataset: { figure: "aht" } }),
      abandon: h("dd", { dataset: { figure: "abandon-rate" } }),
      occupancy: h("dd", { dataset: { figure: "occupancy" } }),
      counts: Object.fromEntries(
        PRESENCE_SHOWN.map((state) => [state, h("span", { class: "count", dataset: { figure: state } })]),
      ),
      lastHour: h("p", { class: "muted small" }),
      staffing: h("p", { class: "small staffing" }),
      alerts: h("ul", { class: "alerts" }),
    };
    const big = (ref, key, extra) =>
      h("div", { class: "figure" }, ref, h("span", { class: "label", text: t(key) }), extra);
    const term = (key, ref) => h("div", {}, h("dt", { text: t(key) }), ref);
    refs.el = h(
      "article",
      { class: "tile card", dataset: { queue: name }, "aria-label": name },
      h("header", {}, refs.title, refs.subtitle),
      h(
        "div",
        { class: "big" },
        (refs.waitingBox = big(refs.waiting, "wb.waiting")),
        (refs.longestBox = big(refs.longest, "wb.longest_wait")),
        (refs.slBox = big(refs.sl, "wb.service_level", refs.goal)),
      ),
      h(
        "dl",
        { class: "small-figures" },
        term("wb.asa", refs.asa),
        term("wb.aht", refs.aht),
        (refs.abandonBox = term("wb.abandon_rate", refs.abandon)),
        term("wb.occupancy", refs.occupancy),
      ),
      h(
        "ul",
        { class: "agent-counts" },
        PRESENCE_SHOWN.map((state) =>
          h(
            "li",
            { class: `state-${state}` },
            refs.counts[state],
            h("span", { text: label("wb.state", state) }),
          ),
        ),
      ),
      refs.lastHour,
      refs.staffing,
      refs.alerts,
    );
    return refs;
  }

  longestWait(q) {
    const oldest = q.waiting_contacts && q.waiting_contacts[0];
    if (oldest) return (this.serverNow() - Date.parse(oldest.waiting_since)) / 1000;
    if (!q.waiting) return 0;
    return q.longest_wait_seconds + Math.max(0, (this.serverNow() - Date.parse(q.at || 0)) / 1000);
  }

  updateTile(refs, q) {
    if (!q) return;
    const display = this.displayName(q.queue);
    refs.title.textContent = display;
    // The queue's own name under its display name; none for the router's own queue.
    refs.subtitle.textContent = display === q.queue || !this.queueInfo.has(q.queue) ? "" : q.queue;
    refs.el.setAttribute("aria-label", display);
    refs.waiting.textContent = String(q.waiting);
    const longest = this.longestWait(q);
    refs.longest.textContent = duration(longest);
    // Whole percents: the tile's big figures must fit three abreast.
    refs.sl.textContent = q.service_level == null ? "—" : `${Math.round(q.service_level * 100)}%`;
    refs.goal.textContent =
      q.sl_goal == null
        ? ""
        : t("wb.sl_goal", {
            goal: `${Math.round(q.sl_goal * 100)}%`,
            seconds: q.sl_threshold_seconds,
          });
    refs.asa.textContent = seconds(q.asa_seconds);
    refs.aht.textContent = seconds(q.aht_seconds);
    refs.abandon.textContent = percent(q.abandon_rate);
    refs.occupancy.textContent = percent(q.occupancy);
    for (const state of PRESENCE_SHOWN) refs.counts[state].textContent = String(q.agents[state] ?? 0);
    refs.lastHour.textContent = t("wb.last_hour", { answered: q.answered, abandoned: q.abandoned });
    refs.staffing.textContent =
      q.agents_needed == null
        ? t("wb.needed_unknown", { staffed: q.agents_staffed })
        : t("wb.needed", { needed: q.agents_needed, staffed: q.agents_staffed });

    const threshold = q.sl_threshold_seconds || 20;
    const levels = {
      sl:
        q.service_level == null || q.sl_goal == null || q.service_level >= q.sl_goal
          ? "ok"
          : q.service_level < q.sl_goal - THRESHOLDS.slBadShortfall
            ? "bad"
            : "warn",
      wait:
        longest > threshold * THRESHOLDS.longestWaitBad
          ? "bad"
          : longest > threshold * THRESHOLDS.longestWaitWarn
            ? "warn"
            : "ok",
      abandon:
        q.abandon_rate == null || q.abandon_rate < THRESHOLDS.abandonWarn
          ? "ok"
          : q.abandon_rate >= THRESHOLDS.abandonBad
            ? "bad"
            : "warn",
      staff:
        q.agents_needed != null && q.agents_staffed < q.agents_needed ? "warn" : "ok",
    };
    refs.slBox.dataset.level = levels.sl;
    refs.longestBox.dataset.level = levels.wait;
    refs.waitingBox.dataset.level = levels.wait;
    refs.abandonBox.dataset.level = levels.abandon;
    refs.staffing.dataset.level = levels.staff;
    refs.el.dataset.level = worst(...Object.values(levels));
    // Colour is not the only cue: each alarm is also written out.
    const alerts = [
      [levels.sl, "wb.alert_sl"],
      [levels.wait, "wb.alert_wait"],
      [levels.abandon, "wb.alert_abandon"],
      [levels.staff, "wb.alert_staff"],
    ]
      .filter(([level]) => level !== "ok")
      .map(([level, key]) => `${level}:${key}`);
    if (refs.alerts.dataset.shown !== alerts.join(",")) {
      refs.alerts.dataset.shown = alerts.join(",");
      fill(
        refs.alerts,
        alerts.map((entry) => {
          const [level, key] = entry.split(":");
          return h("li", { dataset: { level }, text: t(key) });
        }),
      );
    }
  }

  // -- agents ----------------------------------------------------------------------

  renderAgents() {
    const agents = [...this.agents.values()].sort(
      (a, b) => a.name.localeCompare(b.name) || a.agent_id.localeCompare(b.agent_id),
    );
    this.agentEmpty.textContent = agents.length ? "" : t("wb.no_agents");
    agents.forEach((agent, index) => {
      let row = this.agentRows.get(agent.agent_id);
      if (!row) {
        row = this.buildAgentRow(agent);
        this.agentRows.set(agent.agent_id, row);
      }
      this.updateAgentRow(row, agent);
      // Only rows out of place move, so a focused control is not pulled out of the page.
      const here = this.agentBody.children[index];
      if (here !== row.tr) this.agentBody.insertBefore(row.tr, here || null);
    });
    const counts = { available: 0, busy: 0, wrapup: 0, away: 0 };
    for (const agent of agents) {
      const key = agent.state === "ringing" ? "busy" : agent.state;
      if (key in counts) counts[key] += 1;
    }
    this.agentSummary.textContent = agents.length ? t("wb.agents_summary", counts) : "";
  }

  buildAgentRow(agent) {
    const row = {
      name: h("th", { scope: "row", class: "agent-name" }),
      state: h("span", { class: "badge state" }),
      reason: h("span", { class: "muted small reason" }),
      time: h("span", { class: "timer" }),
      contacts: h("ul", { class: "contacts" }),
      // Listen / whisper / barge controls for the agent's calls, kept across updates.
      monitorSlot: h("div", { class: "monitor-slot" }),
      monitorControls: new Map(),
      handled: h("td", { class: "num", dataset: { figure: "handled" } }),
      select: h(
        "select",
        {},
        STATES.map((state) => h("option", { value: state, text: label("wb.state", state) })),
      ),
      button: h("button", { type: "button", text: t("wb.set_state") }),
      dirty: false,
    };
    row.select.addEventListener("change", () => {
      row.dirty = true;
    });
    row.button.addEventListener("click", () => this.setState(agent.agent_id, row));
    row.tr = h(
      "tr",
      { dataset: { agent: agent.agent_id } },
      row.name,
      h("td", {}, row.state, " ", row.reason),
      h("td", {}, row.time),
      h("td", {}, row.contacts, row.monitorSlot),
      row.handled,
      h("td", { class: "actions" }, row.select, row.button),
    );
    return row;
  }

  updateAgentRow(row, agent) {
    row.agent = agent;
    row.name.textContent = agent.name;
    row.state.textContent = label("wb.state", agent.state);
    row.state.dataset.state = agent.state;
    row.tr.dataset.state = agent.state;
    row.reason.textContent =
      agent.reason && agent.state === agent.presence ? label("wb.reason", agent.reason) : "";
    if (agent.state_since) row.time.dataset.since = agent.state_since;
    else delete row.time.dataset.since;
    row.time.textContent = agent.state_since
      ? duration((this.serverNow() - Date.parse(agent.state_since)) / 1000)
      : "—";
    fill(
      row.contacts,
      (agent.contacts || []).map((c) =>
        h(
          "li",
          {},
          [
            label("wb.channel", c.channel),
            this.displayName(c.queue),
            `${label("wb.contact", c.state)} `,
          ].join(" · "),
          c.since
            ? h("span", {
                class: "timer",
                dataset: { since: c.since },
                text: duration((this.serverNow() - Date.parse(c.since)) / 1000),
              })
            : null,
        ),
      ),
    );
    this.updateMonitorControls(row);
    row.handled.textContent = String(agent.handled_today ?? 0);
    row.select.setAttribute("aria-label", t("wb.state_for", { name: agent.name }));
    row.button.setAttribute("aria-label", `${t("wb.set_state")}: ${agent.name}`);
    if (!row.dirty && document.activeElement !== row.select) row.select.value = agent.presence;
  }

  /** One set of controls per call the agent is talking on; others' are left in place. */
  updateMonitorControls(row) {
    const calls = (row.agent.contacts || []).filter(
      (c) => c.channel === "voice" && c.state === "connected",
    );
    const ids = new Set(calls.map((c) => c.contact_id));
    for (const [id, controls] of row.monitorControls) {
      if (!ids.has(id)) {
        controls.el.remove();
        row.monitorControls.delete(id);
      }
    }
    for (const call of calls) {
      let controls = row.monitorControls.get(call.contact_id);
      if (!controls) {
        controls = this.buildMonitorControls(call.contact_id);
        row.monitorControls.set(call.contact_id, controls);
        row.monitorSlot.append(controls.el);
      }
      const session = this.monitors.get(call.contact_id);
      const name = row.agent.name;
      controls.el.setAttribute("aria-label", t("wb.monitor_for", { name }));
      controls.el.dataset.state = session ? session.state : "off";
      for (const mode of MONITOR_MODES) {
        const on = Boolean(session) && session.mode === mode;
        controls.buttons[mode].setAttribute("aria-pressed", String(on));
      }
      // The focus does not fall off the page when Stop turns itself off.
      if (!session && document.activeElement === controls.stop) controls.buttons.listen.focus();
      controls.stop.disabled = !session;
      controls.status.textContent = !session
        ? ""
        : session.state === "ringing"
          ? t("wb.monitor_ringing")
          : label("wb.monitoring", session.mode);
    }
  }

  buildMonitorControls(contactId) {
    const controls = { buttons: {} };
    for (const mode of MONITOR_MODES) {
      controls.buttons[mode] = h("button", {
        type: "button",
        class: "monitor-mode",
        dataset: { mode },
        "aria-pressed": "false",
        text: label("wb.monitor", mode),
        onclick: () => this.sendMonitor(controls, { type: "monitor", contact_id: contactId, mode }),
      });
    }
    controls.stop = h("button", {
      type: "button",
      class: "monitor-stop",
      text: t("wb.monitor_stop"),
      onclick: () => this.sendMonitor(controls, { type: "monitor_stop", contact_id: contactId }),
    });
    controls.status = h("span", { class: "monitor-status muted small", role: "status" });
    controls.el = h(
      "div",
      { class: "monitor", role: "group", dataset: { contact: contactId } },
      MONITOR_MODES.map((mode) => controls.buttons[mode]),
      controls.stop,
      controls.status,
    );
    return controls;
  }

  async sendMonitor(controls, message) {
    controls.el.setAttribute("aria-busy", "true");
    try {
      await this.actions.send(message);
    } catch (error) {
      this.actions.toast(this.actions.errorText(error));
    } finally {
      controls.el.removeAttribute("aria-busy");
    }
  }

  async setState(agentId, row) {
    const presence = row.select.value;
    row.button.disabled = true;
    try {
      await this.actions.send({ type: "agent_presence", agent_id: agentId, presence });
      row.dirty = false;
      this.actions.toast(
        t("wb.state_set", { name: row.agent.name, state: label("wb.state", presence) }),
      );
    } catch (error) {
      this.actions.toast(this.actions.errorText(error));
    } finally {
      row.button.disabled = false;
    }
  }

  // -- waiting contacts --------------------------------------------------------------

  renderWaiting() {
    const queues = [...this.queues.values()];
    const contacts = queues
      .flatMap((q) => (q.waiting_contacts || []).map((c) => ({ ...c, queue: q.queue })))
      .sort((a, b) => Date.parse(a.waiting_since) - Date.parse(b.waiting_since));
    const ids = new Set(contacts.map((c) => c.contact_id));
    for (const [id, row] of this.waitingRows) {
      if (!ids.has(id)) {
        row.tr.remove();
        this.waitingRows.delete(id);
      }
    }
    contacts.forEach((contact, index) => {
      let row = this.waitingRows.get(contact.contact_id);
      if (!row) {
        row = this.buildWaitingRow(contact);
        this.waitingRows.set(contact.contact_id, row);
      }
      this.updateWaitingRow(row, contact);
      const here = this.waitingBody.children[index];
      if (here !== row.tr) this.waitingBody.insertBefore(row.tr, here || null);
    });
    this.waitingEmpty.textContent = contacts.length ? "" : t("wb.none_waiting");
    fill(
      this.waitingNote,
      queues
        .filter((q) => q.waiting > (q.waiting_contacts || []).length)
        .map((q) =>
          h("p", {
            text: t("wb.more_waiting", {
              shown: q.waiting_contacts.length,
              total: q.waiting,
              queue: this.displayName(q.queue),
            }),
          }),
        ),
    );
  }

  buildWaitingRow(contact) {
    const row = {
      customer: h("th", { scope: "row", class: "customer" }),
      channel: h("span", { class: "muted small" }),
      queue: h("td", {}),
      waited: h("span", { class: "timer" }),
      ringing: h("span", { class: "badge state", dataset: { state: "ringing" } }),
      select: h("select", {}),
      button: h("button", { type: "button", text: t("wb.move") }),
      options: null,
    };
    row.button.addEventListener("click", () => this.move(contact.contact_id, row));
    row.tr = h(
      "tr",
      { dataset: { contact: contact.contact_id } },
      row.customer,
      row.queue,
      h("td", {}, row.waited, " ", row.ringing),
      h("td", { class: "actions" }, row.select, row.button),
    );
    return row;
  }

  updateWaitingRow(row, contact) {
    row.contact = contact;
    fill(row.customer, contact.customer_name, " ", row.channel);
    row.channel.textContent = label("wb.channel", contact.channel);
    row.queue.textContent = this.displayName(contact.queue);
    row.waited.dataset.since = contact.waiting_since;
    row.waited.textContent = duration((this.serverNow() - Date.parse(contact.waiting_since)) / 1000);
    row.ringing.textContent = contact.state === "offered" ? label("wb.contact", "offered") : "";
    row.ringing.hidden = contact.state !== "offered";
    const targets = [...this.queues.keys()].sort().filter((name) => name !== contact.queue);
    const key = targets.map((name) => `${name}=${this.displayName(name)}`).join("\n");
    if (row.options !== key) {
      const chosen = row.select.value;
      row.options = key;
      fill(
        row.select,
        targets.length
          ? targets.map((name) => h("option", { value: name, text: this.displayName(name) }))
          : h("option", { value: "", text: t("wb.no_other_queue") }),
      );
      if (targets.includes(chosen)) row.select.value = chosen;
    }
    row.select.disabled = !targets.length;
    row.button.disabled = !targets.length;
    row.select.setAttribute("aria-label", t("wb.move_for", { name: contact.customer_name }));
    row.button.setAttribute("aria-label", `${t("wb.move")}: ${contact.customer_name}`);
  }

  async move(contactId, row) {
    const queue = row.select.value;
    if (!queue) return;
    row.button.disabled = true;
    try {
      await this.actions.send({ type: "move", contact_id: contactId, queue });
      this.actions.toast(t("wb.moved", { queue: this.displayName(queue) }));
    } catch (error) {
      this.actions.toast(this.actions.errorText(error));
    } finally {
      row.button.disabled = false;
    }
  }

  // -- charts ------------------------------------------------------------------------

  staffingSoon() {
    // Queue events come in bursts (one per queue-log line); redraw once per burst.
    if (this.staffingDue) return;
    this.staffingDue = true;
    setTimeout(() => {
      this.staffingDue = false;
      this.renderStaffing();
    }, 250);
  }

  renderStaffing() {
    const queues = [...this.queues.values()].sort((a, b) => a.queue.localeCompare(b.queue));
    if (!queues.length) {
      fill(this.staffingChart, h("p", { class: "muted", text: t("wb.no_data") }));
      return;
    }
    fill(
      this.staffingChart,
      pairedBars(
        queues.map((q) => ({
          label: this.displayName(q.queue),
          a: q.agents_needed,
          b: q.agents_staffed,
        })),
        {
          label: t("wb.chart_staffing_label"),
          aName: t("wb.legend_needed"),
          bName: t("wb.legend_staffed"),
          unknown: "—",
        },
      ),
    );
  }

  startToday() {
    this.loadToday();
    this.todayTimer = setInterval(() => this.loadToday(), TODAY_REFRESH_MS);
  }

  stop() {
    clearInterval(this.todayTimer);
  }

  async loadToday() {
    const midnight = new Date();
    midnight.setHours(0, 0, 0, 0);
    const tomorrow = new Date(midnight);
    tomorrow.setDate(tomorrow.getDate() + 1);
    try {
      const report = await api(
        "GET",
        `/reports/intervals${query({ since: midnight.toISOString(), until: tomorrow.toISOString() })}`,
      );
      this.today = { midnight: midnight.getTime(), report };
    } catch {
      this.today = null;
    }
    this.renderToday();
  }

  renderToday() {
    if (!this.today) {
      fill(this.todayChart, h("p", { class: "muted", text: t("wb.no_data") }));
      return;
    }
    const { midnight, report } = this.today;
    // Up to the interval now running, from the first hour with traffic (08:00 at
    // the latest), and at least the last four hours.
    const slots = Math.floor((Date.now() - midnight) / SLOT_MS) + 1;
    const totals = Array.from({ length: slots }, () => ({ offered: 0, answered: 0, fast: 0 }));
    for (const q of report.queues) {
      for (const row of q.intervals) {
        const i = Math.floor((Date.parse(row.start) - midnight) / SLOT_MS);
        if (i < 0 || i >= slots) continue;
        totals[i].offered += row.offered;
        totals[i].answered += row.answered;
        totals[i].fast += Math.round((row.service_level ?? 0) * row.answered);
      }
    }
    const first = totals.findIndex((x) => x.offered > 0);
    const from =
      Math.floor(Math.min(first < 0 ? QUIET_START : first, QUIET_START, Math.max(0, slots - 16)) / 4) *
      4;
    const points = totals.slice(from).map((x, k) => ({
      label: time(new Date(midnight + (from + k) * SLOT_MS).toISOString()),
      bar: x.offered,
      line: x.answered ? x.fast / x.answered : null,
    }));
    const every = Math.max(1, Math.ceil(points.length / 8 / 4) * 4);
    fill(
      this.todayChart,
      barLineChart(points, {
        label: t("wb.chart_today_label"),
        barName: t("wb.legend_offered"),
        lineName: t("wb.legend_sl"),
        tick: (i) => (from + i) % every === 0,
        percent: (f) => `${Math.round(f * 100)}%`,
      }),
    );
  }
}
