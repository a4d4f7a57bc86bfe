// The screen pop: who the customer is, their open tickets, their history and
// what the IVR or the chat form collected. Everything is drawn from data with
// h(), so nothing the customer typed can become markup.

import { append, h } from "/common/dom.js";
import { dateTime, label, t } from "/common/i18n.js";

function field(key, value) {
  if (value == null || value === "" || (Array.isArray(value) && !value.length)) return null;
  const shown = Array.isArray(value) ? value.join(", ") : String(value);
  return [h("dt", { text: t(key) }), h("dd", { text: shown })];
}

/** A phone of the customer card ({number, label} or a plain string) as shown. */
export function phoneText(phone) {
  if (typeof phone === "string") return phone;
  return phone.label ? `${phone.number} (${phone.label})` : phone.number;
}

export function tierBadge(tier) {
  if (!tier) return null;
  return h("span", { class: `badge tier-${tier}`, dataset: { tier } }, label("tier", tier));
}

// A call's recording: a player for supervisors and for the agent who took the
// call (the server checks the same rule and logs every play), a badge otherwise.
function recording(item, me) {
  const allowed = me && (me.role !== "agent" || me.id === item.agent_id);
  if (!allowed) return h("span", { class: "badge" }, t("pop.recording"));
  return h("audio", {
    class: "recording",
    controls: true,
    preload: "none",
    src: `/api/v1/interactions/${encodeURIComponent(item.id)}/recording`,
    "aria-label": t("pop.recording"),
  });
}

// The customer's phones, each with a button that calls it (click-to-call).
function phones(customer, dial) {
  const list = customer.phones || [];
  if (!list.length) return null;
  return [
    h("dt", { text: t("pop.phone") }),
    h(
      "dd",
      { class: "phones" },
      list.map((phone) =>
        h(
          "span",
          { class: "phone" },
          phoneText(phone),
          dial
            ? h(
                "button",
                {
                  class: "link call-phone",
                  title: t("dial.call_customer"),
                  onclick: () => dial(typeof phone === "string" ? phone : phone.number, customer.id ?? null),
                },
                t("dial.call"),
              )
            : null,
        ),
      ),
    ),
  ];
}

/** The customer card and the rest of the pop, for the contact being shown;
 * ``dial(number, customerId)`` calls one of the customer's phones. */
export function renderPop(pop, openTicket, me, dial = null) {
  if (!pop) return h("p", { class: "muted", text: t("pop.none") });
  const customer = pop.customer;
  const card = h("section", { class: "card customer-card", "aria-label": t("pop.customer") });
  if (!customer) {
    // Nothing identified a customer record: show the name the form collected.
    append(card, [
      h(
        "div",
        { class: "customer-head" },
        h("h2", { class: "customer-name", text: pop.collected?.name || t("pop.no_name") }),
        h("span", { class: "badge unverified", title: t("pop.unverified_hint") }, t("pop.unverified")),
      ),
      h("p", { class: "muted", text: t("pop.unknown_customer") }),
    ]);
  } else {
    append(card, [
      h(
        "div",
        { class: "customer-head" },
        h("h2", { class: "customer-name", text: customer.name || t("pop.no_name") }),
        tierBadge(customer.tier),
        pop.verified
          ? h("span", { class: "badge verified" }, t("pop.verified"))
          : h("span", { class: "badge unverified", title: t("pop.unverified_hint") }, t("pop.unverified")),
      ),
      h(
        "dl",
        { class: "facts" },
        phones(customer, dial),
        field("pop.email", (customer.emails || []).map((e) => (typeof e === "string" ? e : e.email))),
        field("pop.company", customer.company),
        field("pop.account", customer.account_number),
        field("pop.value", customer.value_score),
        field("pop.tags", customer.tags),
      ),
      customer.notes ? h("p", { class: "notes" }, h("strong", {}, `${t("pop.notes")}: `), customer.notes) : null,
    ]);
  }
  const collected = Object.entries(pop.collected || {}).filter(([, v]) => v !== "" && v != null);
  const tickets = pop.open_tickets || [];
  const history = pop.history || [];
  return h(
    "div",
    { class: "pop" },
    card,
    collected.length
      ? h(
          "section",
          { class: "collected" },
          h("h3", { text: t("pop.collected") }),
          h("dl", { class: "facts" }, collected.map(([k, v]) => [h("dt", { text: label("collected", k) }), h("dd", { text: String(v) })])),
        )
      : null,
    h(
      "section",
      { class: "open-tickets" },
      h("h3", { text: t("pop.open_tickets") }),
      tickets.length
        ? h(
            "ul",
            { class: "plain" },
            tickets.map((ticket) =>
              h(
                "li",
                {},
                h(
                  "button",
                  { class: "link", onclick: () => openTicket(ticket.id) },
                  `${ticket.number} · ${ticket.subject}`,
                ),
                " ",
                h("span", { class: "badge" }, label("status", ticket.status)),
              ),
            ),
          )
        : h("p", { class: "muted", text: pop.verified ? t("common.none") : t("pop.hidden_unverified") }),
    ),
    h(
      "section",
      { class: "history" },
      h("h3", { text: t("pop.history") }),
      history.length
        ? h(
            "ol",
            { class: "timeline" },
            history.map((item) =>
              h(
                "li",
                {},
                h("span", { class: "when", text: dateTime(item.arrived_at) }),
                h("span", { class: "badge" }, label("channel", item.channel)),
                item.agent_id ? h("span", { text: `${t("pop.agent")} ${item.agent_id}` }) : null,
                item.disposition_code ? h("span", { text: item.disposition_code }) : null,
                item.csat_score ? h("span", { class: "csat", text: `${t("pop.csat")} ${item.csat_score}/5` }) : null,
                item.has_recording ? recording(item, me) : null,
              ),
            ),
          )
        : h("p", { class: "muted", text: pop.verified ? t("common.none") : t("pop.hidden_unverified") }),
    ),
  );
}
