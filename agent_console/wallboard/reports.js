// The reports view: totals per queue (GET /reports/intervals) and per agent
// (GET /reports/agents) over a range of days, a chart, and CSV export.

import { api, query } from "../common/api.js";
import { h, fill } from "../common/dom.js";
import { currentLanguage, duration, label, percent, t, time } from "../common/i18n.js";
import { barLineChart } from "./charts.js";
import { downloadCsv } from "./csv.js";

// The server's limit on one report (callcenter/web/routes/reports.py MAX_DAYS).
const MAX_DAYS = 366;
const SLOT_MS = 15 * 60_000;
const DAY_MS = 86_400_000;

/** A local date as the value of an <input type=date>. */
function dateValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** Local midnight of an <input type=date> value. */
function midnightOf(value) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d);
}

const seconds = (value) => (value == null ? "—" : duration(value));
const fixed = (value, digits = 1) => (value == null ? "" : Number(value).toFixed(digits));
const pct = (value) => (value == null ? "" : (value * 100).toFixed(1));

/** Totals over several queues' rows, weighted as the server weighs one queue's intervals. */
function sumQueues(rows) {
  const sum = (f) => rows.reduce((acc, r) => acc + f(r), 0);
  const answered = sum((r) => r.answered);
  const abandoned = sum((r) => r.abandoned);
  const handled = sum((r) => r.handled ?? 0);
  return {
    offered: sum((r) => r.offered),
    answered,
    abandoned,
    handled,
    service_level: answered ? sum((r) => (r.service_level ?? 0) * r.answered) / answered : null,
    asa_seconds: answered ? sum((r) => (r.asa_seconds ?? 0) * r.answered) / answered : null,
    aht_seconds: handled ? sum((r) => (r.aht_seconds ?? 0) * (r.handled ?? 0)) / handled : null,
    abandon_rate: answered + abandoned ? abandoned / (answered + abandoned) : null,
  };
}

export class Reports {
  constructor(root, actions) {
    this.root = root;
    this.actions = actions;
    this.data = null;
    this.queueInfo = new Map();
    this.loaded = false;
    this.build();
  }

  build() {
    const today = dateValue(new Date());
    this.from = h("input", { type: "date", id: "report-from", value: today, required: true });
    this.to = h("input", { type: "date", id: "report-to", value: today, required: true });
    this.queue = h("select", { id: "report-queue" });
    this.error = h("p", { class: "form-error", role: "alert", id: "report-error" });
    this.results = h("div", { class: "report-results", id: "report-results", "aria-live": "polite" });
    const form = h(
      "form",
      { class: "card report-form", id: "report-form" },
      h("h2", { "data-i18n": "wb.reports" }),
      h(
        "div",
        { class: "fields" },
        h("label", { for: "report-from", "data-i18n": "wb.from" }),
        this.from,
        h("label", { for: "report-to", "data-i18n": "wb.to" }),
        this.to,
        h("label", { for: "report-queue", "data-i18n": "wb.queue" }),
        this.queue,
        h("button", { type: "submit", class: "primary", id: "report-run", "data-i18n": "wb.show" }),
      ),
      this.error,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
    fill(this.root, form, this.results);
    this.setQueues([...this.queueInfo.values()]);
  }

  setQueues(items) {
    this.queueInfo = new Map(items.map((q) => [q.name, q]));
    const chosen = this.queue.value;
    fill(
      this.queue,
      h("option", { value: "", text: t("wb.all_queues") }),
      items.map((q) => h("option", { value: q.name, text: q.display_name || q.name })),
    );
    this.queue.value = this.queueInfo.has(chosen) ? chosen : "";
    // Display names may arrive after the first report.
    this.render();
  }

  relabel() {
    this.setQueues([...this.queueInfo.values()]);
  }

  /** Run the report once, the first time the view is opened. */
  showFirst() {
    if (!this.loaded) {
      this.loaded = true;
      this.run();
    }
  }

  async run() {
    this.error.textContent = "";
    const from = this.from.value;
    const to = this.to.value;
    if (!from || !to) return;
    const since = midnightOf(from);
    const until = midnightOf(to);
    until.setDate(until.getDate() + 1);
    const days = Math.round((until - since) / DAY_MS);
    if (days < 1 || days > MAX_DAYS) {
      this.error.textContent = t("wb.bad_range");
      return;
    }
    const params = { since: since.toISOString(), until: until.toISOString(), queue: this.queue.value };
    fill(this.results, h("p", { class: "muted", text: t("common.loading") }));
    try {
      const [queues, agents] = await Promise.all([
        api("GET", `/reports/intervals${query(params)}`),
        api("GET", `/reports/agents${query(params)}`),
      ]);
      this.data = { from, to, since: since.getTime(), days, queues, agents };
    } catch (error) {
      this.data = null;
      fill(this.results);
      this.error.textContent = this.actions.errorText(error);
      return;
    }
    this.render();
  }

  displayName(queue) {
    const info = this.queueInfo.get(queue);
    // The router's own queue (calls for one agent) has a translated name.
    return (info && info.display_name) || label("queue", queue);
  }

  render() {
    if (!this.data) return;
    const { queues, agents } = this.data;
    if (!queues.queues.length && !agents.agents.length) {
      fill(this.results, h("p", { class: "card muted", text: t("wb.report_empty") }));
      return;
    }
    fill(
      this.results,
      h(
        "section",
        { class: "card", "aria-labelledby": "report-chart-title" },
        h("h2", { id: "report-chart-title", text: t("wb.chart_report") }),
        h("div", { class: "chart-box", id: "report-chart" }, this.chart()),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "queue-totals-title" },
        h(
          "div",
          { class: "panel-head" },
          h("h2", { id: "queue-totals-title", text: t("wb.queue_totals") }),
          h("button", {
            type: "button",
            id: "export-queues",
            text: t("wb.export_queues"),
            onclick: () => this.exportQueues(),
          }),
        ),
        h("div", { class: "scroll" }, this.queueTable()),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "agent-totals-title" },
        h(
          "div",
          { class: "panel-head" },
          h("h2", { id: "agent-totals-title", text: t("wb.agent_totals") }),
          h("button", {
            type: "button",
            id: "export-agents",
            text: t("wb.export_agents"),
            onclick: () => this.exportAgents(),
          }),
        ),
        h("p", { class: "muted small", text: t("wb.agent_totals_note") }),
        h("div", { class: "scroll" }, this.agentTable()),
      ),
    );
  }

  queueRows() {
    const rows = this.data.queues.queues;
    return rows.length > 1 ? [...rows, { queue: null, ...sumQueues(rows) }] : rows;
  }

  queueTable() {
    const head = [
      "col_queue",
      "col_offered",
      "col_answered",
      "col_abandoned",
      "col_sl",
      "col_asa",
      "col_aht",
      "col_abandon_rate",
    ];
    return h(
      "table",
      { class: "grid report", id: "queue-totals" },
      h("thead", {}, h("tr", {}, head.map((key) => h("th", { scope: "col", text: t(`wb.${key}`) })))),
      h(
        "tbody",
        {},
        this.queueRows().map((r) =>
          h(
            "tr",
            { class: r.queue == null ? "total" : null, dataset: r.queue == null ? {} : { queue: r.queue } },
            h("th", { scope: "row", text: r.queue == null ? t("wb.total") : this.displayName(r.queue) }),
            [r.offered, r.answered, r.abandoned].map((n) => h("td", { class: "num", text: String(n) })),
            h("td", { class: "num", text: percent(r.service_level) }),
            h("td", { class: "num", text: seconds(r.asa_seconds) }),
            h("td", { class: "num", text: seconds(r.aht_seconds) }),
            h("td", { class: "num", text: percent(r.abandon_rate) }),
          ),
        ),
      ),
    );
  }

  agentTable() {
    const head = [
      "col_agent",
      "col_answered",
      "col_connected",
      "col_avg_connected",
      "col_csat",
      "col_csat_answers",
    ];
    return h(
      "table",
      { class: "grid report", id: "agent-totals" },
      h("thead", {}, h("tr", {}, head.map((key) => h("th", { scope: "col", text: t(`wb.${key}`) })))),
      h(
        "tbody",
        {},
        this.data.agents.agents.map((a) =>
          h(
            "tr",
            { dataset: { agent: String(a.agent_id) } },
            h("th", { scope: "row", text: a.name }),
            h("td", { class: "num", text: String(a.answered) }),
            h("td", { class: "num", text: seconds(a.connected_seconds) }),
            h("td", { class: "num", text: seconds(a.average_connected_seconds) }),
            h("td", { class: "num", text: a.csat_average == null ? "—" : a.csat_average.toFixed(2) }),
            h("td", { class: "num", text: String(a.csat_answers) }),
          ),
        ),
      ),
    );
  }

  chart() {
    const { since, days, queues } = this.data;
    // One day: by 15 minutes; longer: by day.
    const slot = days === 1 ? SLOT_MS : DAY_MS;
    const count = days === 1 ? 96 : days;
    const totals = Array.from({ length: count }, () => ({ offered: 0, answered: 0, fast: 0 }));
    for (const q of queues.queues) {
      for (const row of q.intervals) {
        // Days are counted on the calendar, so a daylight-saving change does not shift them.
        const start = new Date(row.start);
        const day = new Date(start.getFullYear(), start.getMonth(), start.getDate());
        const i =
          days === 1 ? Math.floor((start - since) / SLOT_MS) : Math.round((day - since) / DAY_MS);
        if (i < 0 || i >= count) continue;
        totals[i].offered += row.offered;
        totals[i].answered += row.answered;
        totals[i].fast += Math.round((row.service_level ?? 0) * row.answered);
      }
    }
    const dayFormat = new Intl.DateTimeFormat(currentLanguage(), { month: "numeric", day: "numeric" });
    const labelOf = (i) => {
      if (days === 1) return time(new Date(since + i * slot).toISOString());
      const day = new Date(since);
      day.setDate(day.getDate() + i);
      return dayFormat.format(day);
    };
    const every = days === 1 ? 12 : Math.max(1, Math.ceil(days / 10));
    return barLineChart(
      totals.map((x, i) => ({
        label: labelOf(i),
        bar: x.offered,
        line: x.answered ? x.fast / x.answered : null,
      })),
      {
        label: t("wb.chart_report_label"),
        barName: t("wb.legend_offered"),
        lineName: t("wb.legend_sl"),
        tick: (i) => i % every === 0,
        percent: (f) => `${Math.round(f * 100)}%`,
      },
    );
  }

  exportQueues() {
    const rows = [
      [
        t("wb.col_queue"),
        t("wb.col_name"),
        t("wb.col_offered"),
        t("wb.col_answered"),
        t("wb.col_abandoned"),
        t("wb.csv_sl"),
        t("wb.csv_asa"),
        t("wb.csv_aht"),
        t("wb.csv_abandon_rate"),
      ],
      ...this.queueRows().map((r) => [
        r.queue == null ? t("wb.total") : r.queue,
        r.queue == null ? "" : this.displayName(r.queue),
        r.offered,
        r.answered,
        r.abandoned,
        pct(r.service_level),
        fixed(r.asa_seconds),
        fixed(r.aht_seconds),
        pct(r.abandon_rate),
      ]),
    ];
    downloadCsv(`queue-totals-${this.data.from}-${this.data.to}.csv`, rows);
  }

  exportAgents() {
    const rows = [
      [
        t("wb.col_agent"),
        t("wb.col_answered"),
        t("wb.csv_connected"),
        t("wb.csv_avg_connected"),
        t("wb.col_csat"),
        t("wb.col_csat_answers"),
      ],
      ...this.data.agents.agents.map((a) => [
        a.name,
        a.answered,
        fixed(a.connected_seconds),
        fixed(a.average_connected_seconds),
        fixed(a.csat_average, 2),
        a.csat_answers,
      ]),
    ];
    downloadCsv(`agent-totals-${this.data.from}-${this.data.to}.csv`, rows);
  }
}
