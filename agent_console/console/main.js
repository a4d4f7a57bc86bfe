// The agent console: presence, offers with the screen pop, several chats at
// once, wrap-up into a ticket, and ticket work. It speaks the /ws/agent
// protocol (docs/protocols.md) and the REST API.

import { api, csrfToken, logout } from "/common/api.js";
import { $, fill, h } from "/common/dom.js";
import {
  currentLanguage,
  duration,
  label,
  languageSelect,
  onLanguage,
  t,
  time,
  translate,
} from "/common/i18n.js";
import { LiveSocket } from "/common/live.js";
import { signIn } from "/common/login.js";
import { renderPop, tierBadge } from "./pop.js";
import "./strings.js";
import { TicketsView } from "./tickets.js";

const AWAY_REASONS = ["break", "lunch", "meeting", "training", "missed"];
const CATEGORIES = ["inquiry", "request", "complaint", "fault", "feedback", "other"];
const PRIORITIES = ["low", "normal", "high", "urgent"];
const TICKET_STATUSES = ["new", "open", "pending", "resolved"];
// How long a typing hint stays up without a new one.
const TYPING_MS = 4000;
// At most one typing hint sent per this long while the agent types.
const TYPING_SEND_MS = 2000;

const state = {
  me: null,
  presence: "offline",
  reason: "",
  presenceSince: Date.now(),
  contacts: new Map(),
  selected: null,
  view: "contacts",
  dispositions: [],
  canned: [],
  socket: null,
  synced: false,
  lastTypingSent: 0,
};

// -- contacts ----------------------------------------------------------------

function contactFrom(data, status) {
  const old = state.contacts.get(data.contact_id);
  return {
    id: data.contact_id,
    channel: data.channel || old?.channel || "chat",
    queue: data.queue || old?.queue || "",
    status,
    deadline: data.deadline ? Date.parse(data.deadline) : old?.deadline ?? null,
    pop: data.pop || old?.pop || null,
    transcript: data.transcript ? [...data.transcript] : old?.transcript || [],
    unread: old?.unread || 0,
    draft: old?.draft || "",
    typingUntil: 0,
    wrapupDeadline: old?.wrapupDeadline ?? null,
  };
}

function customerName(contact) {
  return contact.pop?.customer?.name || contact.pop?.collected?.name || t("pop.no_name");
}

function sorted() {
  const order = { offered: 0, connected: 1, wrapup: 2 };
  return [...state.contacts.values()].sort((a, b) => order[a.status] - order[b.status]);
}

// -- the feed ---------------------------------------------------------------------

function onEvent(event) {
  switch (event.type) {
    case "snapshot": {
      state.synced = true;
      const kept = new Map(state.contacts);
      state.contacts.clear();
      for (const item of event.contacts || []) {
        const status = item.state === "offered" ? "offered" : item.state === "wrapup" ? "wrapup" : "connected";
        const contact = contactFrom(item, status);
        contact.draft = kept.get(item.contact_id)?.draft || "";
        state.contacts.set(item.contact_id, contact);
      }
      setPresence(event.presence, event.reason);
      if (!state.contacts.has(state.selected)) state.selected = sorted()[0]?.id ?? null;
      renderAll();
      break;
    }
    case "resync":
      // The first hello always resyncs; only a reconnect is worth telling.
      if (state.synced) toast(t("common.resynced"));
      break;
    case "presence":
      setPresence(event.presence, event.reason);
      break;
    case "offer": {
      state.contacts.set(event.contact_id, contactFrom(event, "offered"));
      if (!state.selected || state.contacts.get(state.selected)?.status !== "connected") {
        state.selected = event.contact_id;
      }
      renderAll();
      break;
    }
    case "offer_withdrawn": {
      const contact = state.contacts.get(event.contact_id);
      if (contact && contact.status === "offered") {
        state.contacts.delete(event.contact_id);
        if (event.reason !== "taken") toast(t("offer.withdrawn", { reason: label("withdrawn", event.reason) }));
        if (state.selected === event.contact_id) state.selected = sorted()[0]?.id ?? null;
        renderAll();
      }
      break;
    }
    case "connected": {
      const contact = contactFrom(event, "connected");
      state.contacts.set(event.contact_id, contact);
      state.selected = event.contact_id;
      renderAll();
      $("#composer-input")?.focus();
      break;
    }
    case "message": {
      const contact = state.contacts.get(event.contact_id);
      if (!contact) break;
      contact.transcript.push({ from: event.from, text: event.text, at: event.at });
      if (event.from === "customer") contact.typingUntil = 0;
      if (state.selected === event.contact_id) {
        appendMessage($("#transcript"), contact.transcript.at(-1));
        renderTyping();
      } else {
        contact.unread += 1;
      }
      renderList();
      break;
    }
    case "typing": {
      const contact = state.contacts.get(event.contact_id);
      if (!contact || event.from !== "customer") break;
      contact.typingUntil = Date.now() + TYPING_MS;
      renderTyping();
      break;
    }
    case "wrapup": {
      const contact = state.contacts.get(event.contact_id);
      if (!contact) break;
      contact.status = "wrapup";
      contact.wrapupDeadline = event.deadline ? Date.parse(event.deadline) : null;
      renderAll();
      break;
    }
    case "contact_ended": {
      if (state.contacts.delete(event.contact_id)) {
        if (state.selected === event.contact_id) state.selected = sorted()[0]?.id ?? null;
        renderAll();
      }
      break;
    }
    case "call_state": {
      if (event.outbound) {
        // A call out (click-to-call or a due callback): its progress, as notices.
        const call = event.outbound;
        toast(t(`outbound.${call.state}`, { number: call.number, reason: label("outbound.reason", call.reason || "") }));
        break;
      }
      const contact = state.contacts.get(event.contact_id);
      if (contact) {
        if ("held" in event) contact.held = Boolean(event.held);
        if ("muted" in event) contact.muted = Boolean(event.muted);
        if (event.consult) {
          const done = ["ended", "completed"].includes(event.consult.state);
          contact.consult = done ? null : event.consult;
          if (event.consult.state === "ended") toast(t("consult.ended", { reason: label("consult.reason", event.consult.reason || "hung_up") }));
        }
        if (state.selected === contact.id) renderConversation();
      }
      break;
    }
    case "viewers":
      tickets?.setViewers(event.ticket_id, event.users || []);
      break;
    case "error":
      toast(t("common.error", { message: event.message || event.code }));
      break;
    default:
      break;
  }
}

function onState(connection) {
  const badge = $("#connection");
  if (!badge) return;
  badge.dataset.state = connection;
  badge.textContent = t(`common.${connection}`);
  badge.dataset.i18n = `common.${connection}`;
  if (connection === "closed") {
    // The session ended elsewhere (logout, password change): start over.
    setTimeout(() => location.reload(), 1500);
  }
}

async function command(message) {
  try {
    return await state.socket.send(message);
  } catch (error) {
    toast(t("common.error", { message: error.message || error.code }));
    return null;
  }
}

// -- presence ------------------------------------------------------------------------

function setPresence(presence, reason) {
  if (presence !== state.presence || reason !== state.reason) state.presenceSince = Date.now();
  state.presence = presence;
  state.reason = reason || "";
  renderPresence();
}

function presenceValue() {
  return state.presence === "away" ? `away:${state.reason || "break"}` : state.presence;
}

function renderPresence() {
  const select = $("#presence");
  if (!select) return;
  const value = presenceValue();
  if (![...select.options].some((o) => o.value === value)) {
    select.append(h("option", { value }, `${label("presence", "away")} · ${label("reason", state.reason)}`));
  }
  select.value = value;
  select.dataset.presence = state.presence;
  tick();
}

async function changePresence(value) {
  const [presence, reason] = value.split(":");
  await command({ type: "presence", presence, reason: reason || "" });
}

// -- layout -------------------------------------------------------------------------------

function presenceSelect() {
  const select = h("select", { id: "presence", "data-i18n-label": "presence.label" });
  const fillOptions = () => {
    fill(
      select,
      h("option", { value: "available" }, label("presence", "available")),
      AWAY_REASONS.filter((r) => r !== "missed").map((reason) =>
        h("option", { value: `away:${reason}` }, `${label("presence", "away")} · ${label("reason", reason)}`),
      ),
      h("option", { value: "offline" }, label("presence", "offline")),
    );
    renderPresence();
  };
  fillOptions();
  onLanguage(fillOptions);
  select.addEventListener("change", () => changePresence(select.value));
  return select;
}

function layout() {
  return h(
    "div",
    { class: "console" },
    h(
      "header",
      { class: "topbar" },
      h("span", { class: "brand", "data-i18n": "console.title" }),
      h("span", { class: "who", text: state.me.user.display_name || state.me.user.username }),
      presenceSelect(),
      h("span", { id: "in-state", class: "in-state", "aria-live": "off" }),
      h("span", { id: "connection", class: "connection", dataset: { state: "connecting" } }),
      languageSelect(),
      h("button", { id: "help-button", "data-i18n": "help.button", onclick: toggleHelp, "aria-keyshortcuts": "?" }),
      h("button", { id: "logout", "data-i18n": "common.logout", onclick: doLogout }),
    ),
    h(
      "nav",
      { class: "tabs", role: "tablist" },
      h("button", { role: "tab", id: "tab-contacts", "data-i18n": "tabs.contacts", onclick: () => show("contacts") }),
      h("button", { role: "tab", id: "tab-tickets", "data-i18n": "tabs.tickets", onclick: () => show("tickets") }),
    ),
    h("section", { id: "offers", class: "offers", "aria-live": "assertive" }),
    h(
      "main",
      { id: "view-contacts", class: "work" },
      h(
        "aside",
        { class: "contact-list", "aria-labelledby": "contacts-heading" },
        h("h2", { id: "contacts-heading", "data-i18n": "contacts.heading" }),
        h("ul", { id: "contacts", class: "plain" }),
        dialForm(),
      ),
      h("section", { id: "conversation", class: "conversation", "aria-live": "polite" }),
      h("aside", { id: "pop", class: "pop-pane", "aria-label": t("pop.customer") }),
    ),
    h("main", { id: "view-tickets", class: "tickets hidden" }),
    h("div", { id: "help", class: "overlay hidden", role: "dialog", "aria-modal": "true" }),
  );
}

function show(view) {
  state.view = view;
  $("#view-contacts").classList.toggle("hidden", view !== "contacts");
  $("#view-tickets").classList.toggle("hidden", view !== "tickets");
  $("#tab-contacts").setAttribute("aria-selected", String(view === "contacts"));
  $("#tab-tickets").setAttribute("aria-selected", String(view === "tickets"));
  if (view === "tickets") tickets.open();
  else tickets.close();
}

// -- rendering --------------------------------------------------------------------------------

function renderAll() {
  renderOffers();
  renderList();
  renderConversation();
  renderPopPane();
}

function renderList() {
  const list = $("#contacts");
  if (!list) return;
  const focused = document.activeElement?.dataset?.contact;
  const items = sorted();
  fill(
    list,
    items.length
      ? items.map((contact, index) =>
          h(
            "li",
            {},
            h(
              "button",
              {
                class: `contact ${contact.status}${contact.id === state.selected ? " selected" : ""}`,
                dataset: { contact: contact.id, status: contact.status },
                "aria-current": contact.id === state.selected ? "true" : null,
                onclick: () => select(contact.id),
              },
              h("span", { class: "contact-name", text: customerName(contact) }),
              tierBadge(contact.pop?.customer?.tier),
              h("span", { class: "contact-meta" }, `${index + 1} · ${label("channel", contact.channel)} · ${label("status", contact.status)}`),
              contact.unread
                ? h("span", { class: "unread", "aria-label": t("contacts.unread", { count: contact.unread }) }, String(contact.unread))
                : null,
            ),
          ),
        )
      : h("li", { class: "muted", text: state.presence === "available" ? t("contacts.waiting") : t("contacts.none") }),
  );
  if (focused) $(`[data-contact="${CSS.escape(focused)}"]`, list)?.focus();
  document.title = `${items.some((c) => c.status === "offered") ? "🔔 " : ""}${t("console.title")}`;
}

function select(id) {
  state.selected = id;
  const contact = state.contacts.get(id);
  if (contact) contact.unread = 0;
  renderAll();
}

function appendMessage(list, message) {
  if (!list) return;
  list.append(
    h(
      "li",
      { class: `message from-${message.from}`, dataset: { from: message.from } },
      h("span", { class: "message-text", text: message.text }),
      h("time", { class: "message-time", datetime: message.at, text: time(message.at) }),
    ),
  );
  list.scrollTop = list.scrollHeight;
}

function renderConversation() {
  const pane = $("#conversation");
  if (!pane) return;
  const contact = state.contacts.get(state.selected);
  if (!contact) {
    fill(pane, h("div", { class: "empty" }, h("p", { class: "muted", text: t("conversation.empty") })));
    return;
  }
  const transcript = h("ol", { id: "transcript", class: "transcript", "aria-label": t("conversation.transcript") });
  const header = h(
    "div",
    { class: "conversation-head" },
    h("h2", { text: customerName(contact) }),
    tierBadge(contact.pop?.customer?.tier),
    h("span", { class: "muted", text: `${label("channel", contact.channel)} · ${t("conversation.queue")} ${label("queue", contact.queue)}` }),
  );
  const parts = [header];
  parts.push(transcript, h("p", { id: "typing", class: "typing muted", "aria-live": "polite" }));
  if (contact.status === "connected") {
    parts.push(contact.channel === "voice" ? callControls(contact) : composer(contact));
  }
  if (contact.status === "wrapup") parts.push(wrapupForm(contact));
  fill(pane, ...parts);
  for (const message of contact.transcript) appendMessage(transcript, message);
  renderTyping();
}

// Offers ring above whatever the agent is doing (another chat, a ticket), the
// oldest first; the first one carries the ids the shortcuts and tests use.
function renderOffers() {
  const bar = $("#offers");
  if (!bar) return;
  const offered = [...state.contacts.values()].filter((c) => c.status === "offered");
  const hadFocus = bar.contains(document.activeElement);
  fill(
    bar,
    offered.map((contact, index) =>
      h(
        "div",
        { class: "offer", role: "alert", id: index === 0 ? "offer" : null, dataset: { offer: contact.id } },
        h("strong", { text: t("offer.incoming", { channel: label("channel", contact.channel) }) }),
        h("span", { class: "offer-from", text: customerName(contact) }),
        tierBadge(contact.pop?.customer?.tier),
        h("span", { class: "countdown", id: index === 0 ? "offer-countdown" : null, dataset: { deadline: contact.deadline ?? "" } }),
        // A call is answered on the agent's phone: its ringing is the offer.
        contact.channel === "voice"
          ? h("span", { class: "answer-phone", text: t("offer.answer_phone") })
          : h("button", { id: index === 0 ? "accept" : null, class: "primary", "aria-keyshortcuts": index === 0 ? "Alt+A" : null, onclick: () => accept(contact.id) }, t("offer.accept")),
        h("button", { id: index === 0 ? "reject" : null, "aria-keyshortcuts": index === 0 ? "Alt+R" : null, onclick: () => reject(contact.id) }, t("offer.reject")),
        h("button", { class: "link", onclick: () => { show("contacts"); select(contact.id); } }, t("offer.show")),
      ),
    ),
  );
  // Focus goes to a new offer only when the agent is not typing somewhere.
  if (offered.length && (hadFocus || !document.activeElement || document.activeElement === document.body)) {
    $("#accept", bar)?.focus();
  }
  tick();
}

function oldestOffer() {
  return [...state.contacts.values()].find((c) => c.status === "offered");
}

async function accept(id) {
  await command({ type: "accept", contact_id: id });
}

async function reject(id) {
  await command({ type: "reject", contact_id: id });
}

function composer(contact) {
  const input = h("textarea", {
    id: "composer-input",
    rows: 3,
    maxlength: 4000,
    "data-i18n-placeholder": "composer.placeholder",
    placeholder: t("composer.placeholder"),
    "aria-label": t("composer.label"),
  });
  input.value = contact.draft;
  input.addEventListener("input", () => {
    contact.draft = input.value;
    expandShortcut(input, contact);
    const now = Date.now();
    if (now - state.lastTypingSent > TYPING_SEND_MS) {
      state.lastTypingSent = now;
      state.socket.raw({ type: "typing", contact_id: contact.id });
    }
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send(contact, input);
    }
  });
  const canned = h(
    "select",
    { id: "canned", "aria-label": t("composer.canned") },
    h("option", { value: "" }, t("composer.canned")),
    state.canned
      .filter((c) => !c.language || c.language === currentLanguage() || c.language === currentLanguage().slice(0, 2))
      .map((c) => h("option", { value: String(c.id) }, `/${c.shortcut} · ${c.title}`)),
  );
  canned.addEventListener("change", () => {
    const chosen = state.canned.find((c) => String(c.id) === canned.value);
    if (chosen) insertText(input, contact, chosen.body);
    canned.value = "";
    input.focus();
  });
  return h(
    "div",
    { class: "composer" },
    input,
    h(
      "div",
      { class: "composer-actions" },
      canned,
      h("button", { id: "end-chat", "aria-keyshortcuts": "Alt+E", onclick: () => endChat(contact.id) }, t("composer.end")),
      h("button", { id: "send", class: "primary", onclick: () => send(contact, input) }, t("composer.send")),
    ),
  );
}

// A call is answered on the agent's phone; the console holds, mutes, sends
// digits, transfers and hangs up through the server, which relays the media.
function callControls(contact) {
  const controlled = (action, extra = {}) => command({ type: "call", contact_id: contact.id, action, ...extra });
  if (contact.consult) return consultControls(contact, controlled);
  const pad = h(
    "div",
    { class: "dtmf-pad", role: "group", "aria-label": t("call.keypad") },
    [..."123456789*0#"].map((key) => h("button", { dataset: { key }, onclick: () => controlled("dtmf", { digits: key }) }, key)),
  );
  const target = h(
    "select",
    { id: "transfer-queue", "aria-label": t("call.transfer_to") },
    (state.queues || []).map((q) => h("option", { value: q.name }, q.display_name || q.name)),
  );
  const agent = h("select", { id: "transfer-agent", "aria-label": t("call.agent") }, h("option", { value: "" }, t("call.no_agent")));
  freeAgents(agent);
  const toAgent = (action) => agent.value && controlled(action, { agent: agent.value });
  const number = h("input", { id: "transfer-number", type: "tel", maxlength: 40, autocomplete: "off", "aria-label": t("call.number") });
  const toNumber = (action) => number.value.trim() && controlled(action, { number: number.value.trim() });
  return h(
    "div",
    { class: "call-controls", id: "call-controls" },
    h("p", { class: "call-status", id: "call-status" }, contact.held ? t("call.on_hold") : contact.muted ? t("call.muted") : t("call.live")),
    h(
      "div",
      { class: "buttons" },
      h("button", { id: "call-hold", onclick: () => controlled(contact.held ? "resume" : "hold") }, contact.held ? t("call.resume") : t("call.hold")),
      h("button", { id: "call-mute", onclick: () => controlled(contact.muted ? "unmute" : "mute") }, contact.muted ? t("call.unmute") : t("call.mute")),
      h("button", { id: "call-hangup", class: "danger", onclick: () => controlled("hangup") }, t("call.hangup")),
    ),
    pad,
    h(
      "div",
      { class: "transfer" },
      h("label", { for: "transfer-queue" }, t("call.transfer_to")),
      target,
      h("button", { id: "call-transfer", onclick: () => controlled("transfer", { queue: target.value }) }, t("call.transfer")),
    ),
    h(
      "div",
      { class: "transfer" },
      h("label", { for: "transfer-agent" }, t("call.agent")),
      agent,
      h("button", { id: "agents-refresh", title: t("call.refresh"), "aria-label": t("call.refresh"), onclick: () => freeAgents(agent) }, "↻"),
      h("button", { id: "call-consult", class: "primary", onclick: () => toAgent("consult") }, t("call.consult")),
      h("button", { id: "call-transfer-agent", onclick: () => toAgent("transfer") }, t("call.transfer")),
    ),
    h(
      "div",
      { class: "transfer" },
      h("label", { for: "transfer-number" }, t("call.number")),
      number,
      h("button", { id: "call-consult-number", onclick: () => toNumber("consult") }, t("call.consult")),
      h("button", { id: "call-transfer-number", onclick: () => toNumber("transfer") }, t("call.transfer")),
    ),
  );
}

// The consultation: the caller holds while this agent talks to another one.
function consultControls(contact, controlled) {
  const consult = contact.consult;
  const talking = consult.state !== "ringing";
  return h(
    "div",
    { class: "call-controls", id: "call-controls" },
    h("p", { class: "call-status", id: "call-status" }, t(`consult.${consult.state}`, { name: consult.agent_name || consult.agent_id })),
    h(
      "div",
      { class: "buttons" },
      h("button", { id: "consult-complete", class: "primary", disabled: !talking, onclick: () => controlled("complete") }, t("consult.complete")),
      h("button", { id: "consult-conference", disabled: !talking || consult.state === "conference", onclick: () => controlled("conference") }, t("consult.conference_button")),
      h("button", { id: "consult-cancel", onclick: () => controlled("cancel_consult") }, t("consult.cancel")),
      h("button", { id: "call-hangup", class: "danger", onclick: () => controlled("hangup") }, t("call.hangup")),
    ),
  );
}

// Fills the agent picker with the agents who could take a call right now.
async function freeAgents(select) {
  const found = await api("GET", "/agents/free").catch(() => ({ items: [] }));
  const chosen = select.value;
  select.replaceChildren(
    h("option", { value: "" }, found.items.length ? t("call.pick_agent") : t("call.no_agent")),
    ...found.items.map((a) => h("option", { value: String(a.id) }, a.name || String(a.id))),
  );
  select.value = found.items.some((a) => String(a.id) === chosen) ? chosen : "";
}

function insertText(input, contact, text) {
  input.value = input.value ? `${input.value} ${text}` : text;
  contact.draft = input.value;
}

// "/greet " typed at the end of the draft becomes that canned response.
function expandShortcut(input, contact) {
  const match = /(^|\s)\/([\w-]+) $/.exec(input.value);
  if (!match) return;
  const found = state.canned.find((c) => c.shortcut === match[2]);
  if (!found) return;
  input.value = input.value.slice(0, match.index + match[1].length) + found.body;
  contact.draft = input.value;
}

async function send(contact, input) {
  const text = input.value.trim();
  if (!text) return;
  const ok = await command({ type: "message", contact_id: contact.id, text });
  if (ok) {
    input.value = "";
    contact.draft = "";
  }
}

async function endChat(id) {
  await command({ type: "end", contact_id: id });
}

function renderTyping() {
  const line = $("#typing");
  const contact = state.contacts.get(state.selected);
  if (!line || !contact) return;
  line.textContent = contact.typingUntil > Date.now() ? t("conversation.typing", { name: customerName(contact) }) : "";
}

function choice(id, values, group, selected) {
  return h(
    "select",
    { id, name: id },
    values.map((value) => h("option", { value, selected: value === selected }, label(group, value))),
  );
}

function wrapupForm(contact) {
  const dispositions = state.dispositions.filter((d) => d.active);
  const zh = currentLanguage() === "zh-CN";
  const form = h(
    "form",
    { id: "wrapup-form", class: "wrapup card" },
    h("h3", {}, t("wrapup.heading"), " ", h("span", { id: "wrapup-countdown", class: "countdown" })),
    h("label", { for: "disposition" }, t("wrapup.disposition")),
    h(
      "select",
      { id: "disposition", "aria-required": "true", "aria-keyshortcuts": "Alt+W" },
      h("option", { value: "" }, t("wrapup.choose")),
      dispositions.map((d) => h("option", { value: d.code }, zh ? d.label_zh : d.label_en)),
    ),
    h("label", { for: "wrapup-notes" }, t("wrapup.notes")),
    h("textarea", { id: "wrapup-notes", rows: 3, maxlength: 20000 }),
    h(
      "div",
      { class: "wrapup-columns" },
      h(
      "fieldset",
      { class: "ticket-fields" },
      h("legend", {}, t("wrapup.ticket")),
      h("label", { for: "ticket-subject" }, t("ticket.subject")),
      h("input", { id: "ticket-subject", maxlength: 300, value: t("wrapup.default_subject", { name: customerName(contact) }) }),
      h("label", { for: "ticket-category" }, t("ticket.category")),
      choice("ticket-category", CATEGORIES, "category", "inquiry"),
      h("label", { for: "ticket-priority" }, t("ticket.priority")),
      choice("ticket-priority", PRIORITIES, "priority", "normal"),
      h("label", { for: "ticket-status" }, t("ticket.status")),
      choice("ticket-status", TICKET_STATUSES, "status", "resolved"),
    ),
    h(
      "fieldset",
      { class: "callback-fields" },
      h("legend", {}, t("wrapup.callback")),
      h("label", { class: "inline" }, h("input", { type: "checkbox", id: "callback-wanted" }), t("wrapup.callback_wanted")),
      h("label", { for: "callback-due" }, t("wrapup.callback_due")),
      h("input", { id: "callback-due", type: "datetime-local" }),
      h("label", { for: "callback-phone" }, t("wrapup.callback_phone")),
      h("input", { id: "callback-phone", type: "tel", maxlength: 40, value: contact.pop?.customer?.phones?.[0]?.number || "" }),
      ),
    ),
    h("p", { id: "wrapup-error", class: "form-error", role: "alert" }),
    h("button", { type: "submit", id: "wrapup-submit", class: "primary" }, t("wrapup.submit")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitWrapup(contact, form);
  });
  return form;
}

async function submitWrapup(contact, form) {
  const error = $("#wrapup-error", form);
  const disposition = $("#disposition", form).value;
  if (!disposition) {
    error.textContent = t("wrapup.need_disposition");
    $("#disposition", form).focus();
    return;
  }
  const wantsCallback = $("#callback-wanted", form).checked;
  const due = $("#callback-due", form).value;
  const phone = $("#callback-phone", form).value.trim();
  if (wantsCallback && (!due || !phone)) {
    error.textContent = t("wrapup.need_callback");
    return;
  }
  const subject = $("#ticket-subject", form).value.trim();
  const ok = await command({
    type: "wrapup",
    contact_id: contact.id,
    disposition,
    notes: $("#wrapup-notes", form).value,
    ticket: {
      ...(subject ? { subject } : {}),
      category: $("#ticket-category", form).value,
      priority: $("#ticket-priority", form).value,
      status: $("#ticket-status", form).value,
    },
  });
  if (!ok) return;
  if (wantsCallback) {
    try {
      await api("POST", "/callbacks", {
        phone,
        due_at: new Date(due).toISOString(),
        ...(contact.pop?.customer?.id ? { customer_id: contact.pop.customer.id } : {}),
        notes: $("#wrapup-notes", form).value,
      });
      toast(t("wrapup.callback_saved"));
    } catch (failure) {
      toast(t("common.error", { message: failure.message }));
    }
  }
}

function renderPopPane() {
  const pane = $("#pop");
  if (!pane) return;
  const contact = state.contacts.get(state.selected);
  fill(pane, contact ? renderPop(contact.pop, (id) => openTicket(id), state.me.user, dial) : null);
}

function openTicket(id) {
  show("tickets");
  tickets.openTicket(id);
}

// -- clocks ------------------------------------------------------------------------------

function tick() {
  const since = $("#in-state");
  if (since) since.textContent = duration((Date.now() - state.presenceSince) / 1000);
  const contact = state.contacts.get(state.selected);
  for (const countdown of document.querySelectorAll("#offers .countdown")) {
    const deadline = Number(countdown.dataset.deadline);
    if (deadline) {
      countdown.textContent = t("offer.countdown", { seconds: Math.max(0, Math.ceil((deadline - Date.now()) / 1000)) });
    }
  }
  const wrap = $("#wrapup-countdown");
  if (wrap && contact?.wrapupDeadline) {
    wrap.textContent = t("wrapup.countdown", { time: duration((contact.wrapupDeadline - Date.now()) / 1000) });
  }
  renderTyping();
}

// -- keyboard ----------------------------------------------------------------------------

const SHORTCUTS = [
  ["?", "help.show"],
  ["Alt+A", "help.accept"],
  ["Alt+R", "help.reject"],
  ["Alt+E", "help.end"],
  ["Alt+W", "help.wrapup"],
  ["Alt+1…9", "help.switch"],
  ["Alt+C", "help.contacts"],
  ["Alt+T", "help.tickets"],
  ["Alt+S", "help.status"],
  ["Enter", "help.send"],
  ["Shift+Enter", "help.newline"],
  ["/", "help.canned"],
  ["Esc", "help.close"],
];

function toggleHelp(force) {
  const overlay = $("#help");
  const open = typeof force === "boolean" ? force : overlay.classList.contains("hidden");
  if (open) {
    fill(
      overlay,
      h(
        "div",
        { class: "card help" },
        h("h2", { id: "help-title" }, t("help.title")),
        h("table", {}, h("tbody", {}, SHORTCUTS.map(([keys, key]) => h("tr", {}, h("td", {}, h("kbd", {}, keys)), h("td", { text: t(key) }))))),
        h("button", { id: "help-close", onclick: () => toggleHelp(false) }, t("common.close")),
      ),
    );
    overlay.setAttribute("aria-labelledby", "help-title");
  }
  overlay.classList.toggle("hidden", !open);
  if (open) $("#help-close").focus();
}

function typingInField(event) {
  const target = event.target;
  return target instanceof HTMLElement && (target.matches("input, textarea, select") || target.isContentEditable);
}

function onKey(event) {
  if (event.key === "Escape") {
    // Esc closes the help, else leaves the field, so the shortcuts work again.
    if (!$("#help").classList.contains("hidden")) toggleHelp(false);
    else if (typingInField(event)) event.target.blur();
    return;
  }
  if (event.key === "?" && !typingInField(event)) {
    event.preventDefault();
    toggleHelp();
    return;
  }
  if (!event.altKey || event.ctrlKey || event.metaKey) return;
  const contact = state.contacts.get(state.selected);
  const key = event.code.startsWith("Digit") ? event.code.slice(5) : event.code.replace("Key", "").toLowerCase();
  const actions = {
    a: () => oldestOffer() && oldestOffer().channel !== "voice" && accept(oldestOffer().id),
    r: () => oldestOffer() && reject(oldestOffer().id),
    e: () => contact?.status === "connected" && endChat(contact.id),
    w: () => $("#disposition")?.focus(),
    c: () => show("contacts"),
    t: () => show("tickets"),
    s: () => $("#presence")?.focus(),
  };
  if (/^[1-9]$/.test(key)) {
    const target = sorted()[Number(key) - 1];
    if (target) {
      event.preventDefault();
      show("contacts");
      select(target.id);
    }
    return;
  }
  if (actions[key]) {
    event.preventDefault();
    actions[key]();
  }
}

// -- misc ---------------------------------------------------------------------------------

// Click-to-call: the agent's own phone rings first, then the number's.
function dialForm() {
  const number = h("input", { id: "dial-number", type: "tel", maxlength: 40, autocomplete: "off" });
  return h(
    "form",
    {
      id: "dial-form",
      class: "dial",
      onsubmit: (event) => {
        event.preventDefault();
        if (number.value.trim()) dial(number.value.trim());
      },
    },
    h("label", { for: "dial-number", "data-i18n": "dial.label" }),
    number,
    h("button", { id: "dial-button", type: "submit", "data-i18n": "dial.call" }),
  );
}

async function dial(number, customerId = null) {
  try {
    await api("POST", "/calls", { number, customer_id: customerId });
    toast(t("dial.ringing", { number }));
  } catch (error) {
    toast(t("dial.failed", { reason: label("dial.error", error.code) }));
  }
}

function toast(text) {
  const note = h("div", { class: "toast", role: "status", text });
  document.body.append(note);
  setTimeout(() => note.remove(), 4000);
}

async function doLogout() {
  state.socket?.stop();
  await logout().catch(() => {});
  location.reload();
}

async function loadReference() {
  const [dispositions, canned, queues] = await Promise.all([
    api("GET", "/dispositions").catch(() => ({ items: [] })),
    api("GET", "/canned-responses").catch(() => ({ items: [] })),
    api("GET", "/queues").catch(() => ({ items: [] })),
  ]);
  state.dispositions = dispositions.items;
  state.canned = canned.items;
  state.queues = queues.items;
}

let tickets;

async function start() {
  const app = $("#app");
  translate(document);
  state.me = await signIn(app);
  await loadReference();
  fill(app, layout());
  tickets = new TicketsView($("#view-tickets"), toast, (ticketId) =>
    state.socket?.raw({ type: "viewing", ticket_id: ticketId || "" }),
  );
  translate(document);
  show("contacts");
  renderAll();
  onLanguage(() => {
    renderAll();
    tickets.refresh();
    onState($("#connection").dataset.state);
  });
  document.addEventListener("keydown", onKey);
  state.socket = new LiveSocket("/ws/agent", csrfToken, onEvent, onState);
  state.socket.start();
  setInterval(tick, 500);
  // For operators and tests: the live state of this console.
  window.ccConsole = { state, socket: state.socket };
}

start().catch((error) => {
  fill($("#app"), h("p", { class: "form-error login", text: t("common.error", { message: error.message }) }));
});

