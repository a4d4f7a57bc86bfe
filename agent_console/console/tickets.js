// Ticket work: search and filter, open a ticket, comment, move it through its
// lifecycle, read its history, and see who else has it open.

import { api, query } from "/common/api.js";
import { $, fill, h } from "/common/dom.js";
import { dateTime, label, t } from "/common/i18n.js";

const STATUSES = ["new", "open", "pending", "resolved", "closed"];
const CATEGORIES = ["inquiry", "request", "complaint", "fault", "feedback", "other"];
const PRIORITIES = ["low", "normal", "high", "urgent"];
// The lifecycle as the server enforces it (callcenter/tickets/lifecycle.py);
// only used to offer the moves that can succeed.
const NEXT = {
  new: ["open", "pending", "resolved"],
  open: ["pending", "resolved"],
  pending: ["open", "resolved"],
  resolved: ["open", "closed"],
  closed: [],
};

function options(values, group, blank) {
  return [h("option", { value: "" }, blank), ...values.map((v) => h("option", { value: v }, label(group, v)))];
}

// A changed value as the agent reads it: closed sets translated, the rest as is.
function shown(fieldName, value) {
  if (value == null || value === "") return "—";
  return ["status", "category", "priority"].includes(fieldName) ? label(fieldName, value) : value;
}

export class TicketsView {
  constructor(root, toast, viewing) {
    this.root = root;
    this.toast = toast;
    this.viewing = viewing;
    this.current = null;
    this.viewers = [];
    this.results = [];
    this.built = false;
  }

  build() {
    this.search = h("input", {
      id: "ticket-search",
      type: "search",
      maxlength: 100,
      placeholder: t("tickets.search_placeholder"),
      "aria-label": t("common.search"),
    });
    this.status = h("select", { id: "ticket-filter-status", "aria-label": t("ticket.status") }, options(STATUSES, "status", t("tickets.any_status")));
    this.category = h("select", { id: "ticket-filter-category", "aria-label": t("ticket.category") }, options(CATEGORIES, "category", t("tickets.any_category")));
    this.priority = h("select", { id: "ticket-filter-priority", "aria-label": t("ticket.priority") }, options(PRIORITIES, "priority", t("tickets.any_priority")));
    const form = h(
      "form",
      { class: "ticket-search", role: "search" },
      this.search,
      this.status,
      this.category,
      this.priority,
      h("button", { type: "submit", class: "primary", id: "ticket-search-button" }, t("common.search")),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.find();
    });
    this.list = h("div", { id: "ticket-results", class: "ticket-results" });
    this.detail = h("section", { id: "ticket-detail", class: "ticket-detail", "aria-live": "polite" });
    fill(this.root, h("div", { class: "ticket-left" }, form, this.list), this.detail);
    this.built = true;
  }

  open() {
    if (!this.built) this.build();
    this.find();
    this.search.focus();
  }

  close() {
    if (this.current) this.viewing("");
  }

  refresh() {
    if (!this.built) return;
    const kept = [this.search.value, this.status.value, this.category.value, this.priority.value];
    this.build();
    [this.search.value, this.status.value, this.category.value, this.priority.value] = kept;
    this.renderResults();
    if (this.current) this.renderDetail();
  }

  async find() {
    try {
      const reply = await api(
        "GET",
        `/tickets${query({
          q: this.search.value.trim(),
          status: this.status.value,
          category: this.category.value,
          priority: this.priority.value,
          page_size: 50,
        })}`,
      );
      this.results = reply.items;
      this.renderResults();
    } catch (error) {
      this.toast(t("common.error", { message: error.message }));
    }
  }

  renderResults() {
    if (!this.results.length) {
      fill(this.list, h("p", { class: "muted", text: t("tickets.none_found") }));
      return;
    }
    fill(
      this.list,
      h(
        "table",
        { class: "ticket-table" },
        h(
          "thead",
          {},
          h("tr", {}, ["ticket.number", "ticket.subject", "ticket.status", "ticket.priority", "ticket.updated"].map((k) => h("th", { text: t(k) }))),
        ),
        h(
          "tbody",
          {},
          this.results.map((ticket) =>
            h(
              "tr",
              { dataset: { ticket: ticket.id } },
              h("td", {}, h("button", { class: "link", onclick: () => this.openTicket(ticket.id) }, ticket.number)),
              h("td", { class: "subject", text: ticket.subject }),
              h("td", {}, h("span", { class: `badge status-${ticket.status}` }, label("status", ticket.status))),
              h("td", { text: label("priority", ticket.priority) }),
              h("td", { text: dateTime(ticket.updated_at) }),
            ),
          ),
        ),
      ),
    );
  }

  async openTicket(id) {
    if (!this.built) this.build();
    try {
      this.current = await api("GET", `/tickets/${encodeURIComponent(id)}`);
    } catch (error) {
      this.toast(t("common.error", { message: error.message }));
      return;
    }
    this.viewers = [];
    this.viewing(id);
    this.renderDetail();
  }

  setViewers(ticketId, users) {
    if (!this.current || this.current.id !== ticketId) return;
    this.viewers = users;
    const line = $("#ticket-viewers", this.root);
    if (line) this.fillViewers(line);
  }

  fillViewers(line) {
    line.textContent = this.viewers.length ? t("tickets.also_viewing", { names: this.viewers.join(", ") }) : "";
  }

  renderDetail() {
    const ticket = this.current;
    const viewers = h("p", { id: "ticket-viewers", class: "viewers", "aria-live": "polite" });
    this.fillViewers(viewers);
    const comment = h("textarea", { id: "comment-body", rows: 3, maxlength: 20000, "aria-label": t("tickets.comment") });
    const commentForm = h(
      "form",
      { class: "comment-form" },
      h("label", { for: "comment-body" }, t("tickets.comment")),
      comment,
      h("label", { class: "inline" }, h("input", { type: "checkbox", id: "comment-internal", checked: true }), t("tickets.internal")),
      h("button", { type: "submit", id: "comment-submit" }, t("tickets.add_comment")),
    );
    commentForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!comment.value.trim()) return;
      try {
        await api("POST", `/tickets/${ticket.id}/comments`, {
          body: comment.value,
          internal: $("#comment-internal", commentForm).checked,
        });
        await this.openTicket(ticket.id);
      } catch (error) {
        this.toast(t("common.error", { message: error.message }));
      }
    });
    const resolution = h("textarea", { id: "resolution", rows: 2, maxlength: 20000, "aria-label": t("tickets.resolution") });
    const moves = NEXT[ticket.status] || [];
    fill(
      this.detail,
      h(
        "div",
        { class: "card" },
        h("h2", {}, `${ticket.number} · `, h("span", { class: "subject", text: ticket.subject })),
        viewers,
        h(
          "dl",
          { class: "facts" },
          [
            ["ticket.status", label("status", ticket.status)],
            ["ticket.category", label("category", ticket.category)],
            ["ticket.priority", label("priority", ticket.priority)],
            ["ticket.created", dateTime(ticket.created_at)],
            ["ticket.resolution_due", dateTime(ticket.resolution_due)],
          ].map(([k, v]) => [h("dt", { text: t(k) }), h("dd", { text: v })]),
        ),
        ticket.resolution_overdue ? h("p", { class: "overdue", text: t("tickets.overdue") }) : null,
        ticket.description ? h("pre", { class: "description", text: ticket.description }) : null,
        moves.length
          ? h(
              "div",
              { class: "transitions" },
              h("label", { for: "resolution" }, t("tickets.resolution")),
              resolution,
              h(
                "div",
                { class: "buttons" },
                moves.map((to) =>
                  h("button", { dataset: { to }, onclick: () => this.move(to, resolution.value) }, t("tickets.move_to", { status: label("status", to) })),
                ),
              ),
            )
          : null,
        h("h3", { text: t("tickets.comments") }),
        h(
          "ul",
          { class: "comments plain" },
          (ticket.comments || []).map((c) =>
            h(
              "li",
              { class: c.internal ? "internal" : "" },
              h("span", { class: "muted", text: `${dateTime(c.created_at)} · ${c.author_id ? t("tickets.by", { id: c.author_id }) : ""}` }),
              c.internal ? h("span", { class: "badge" }, t("tickets.internal")) : null,
              h("p", { class: "comment-text", text: c.body }),
            ),
          ),
        ),
        commentForm,
        h("h3", { text: t("tickets.history") }),
        h(
          "ol",
          { class: "timeline" },
          (ticket.history || []).map((change) =>
            h(
              "li",
              {},
              h("span", { class: "when", text: dateTime(change.at) }),
              h("span", { text: ` ${label("field", change.field)}: ${shown(change.field, change.old)} → ${shown(change.field, change.new)}` }),
            ),
          ),
        ),
      ),
    );
  }

  async move(to, resolutionText) {
    const ticket = this.current;
    const body = { to };
    if (resolutionText.trim()) body.resolution = resolutionText.trim();
    try {
      await api("POST", `/tickets/${ticket.id}/transitions`, body);
      await this.openTicket(ticket.id);
      this.find();
    } catch (error) {
      this.toast(t("common.error", { message: error.message }));
    }
  }
}
