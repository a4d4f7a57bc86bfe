/*
 * The customer chat widget, embedded in a company's own website:
 *
 *   <script src="https://cc.example.com/widget/widget.js"
 *           data-queue="chat" data-language="zh-CN" async></script>
 *
 * Attributes (all optional):
 *   data-queue           queue the chats go to (the server's default otherwise)
 *   data-language        "en" or "zh-CN" (else the visitor's browser language)
 *   data-identity-token  a token the site signed for a logged-in customer
 *                        (docs/protocols.md, "Chat widget")
 *   data-color           accent colour, "#rrggbb"
 *
 * The page may also call window.CCWidget: open(), close(), setLanguage(lang),
 * identify(token); "ccwidget:ready" is dispatched on window once it exists,
 * and "ccwidget:language" when the visitor switches language in the panel (a
 * choice that is remembered and then wins over data-language).
 *
 * It runs inside other companies' pages, so it is one classic script with its
 * own strings and element builder instead of the console's modules, and it
 * lives in a Shadow DOM so that neither side's CSS reaches the other. The
 * websocket and the stylesheet come from the script's own origin, so that
 * origin's server must list the site in chat.allowed_origins, and a site with
 * its own CSP must allow it in script-src, style-src and connect-src.
 *
 * Typed text (names, messages) only ever reaches the page as text nodes.
 */
(function () {
  "use strict";

  if (window.CCWidget) return; // included twice: the first copy stays in charge

  const script =
    document.currentScript || document.querySelector('script[src*="/widget/widget.js"]');
  if (!script) return;

  const BASE = new URL(script.src, location.href);
  const SOCKET_URL = new URL("/ws/chat", BASE);
  SOCKET_URL.protocol = BASE.protocol === "https:" ? "wss:" : "ws:";
  const STYLESHEET = new URL("/widget/widget.css", BASE).href;

  const LANGUAGES = ["en", "zh-CN"];
  const CHAT_KEY = "cc.widget.chat";
  const CUSTOMER_KEY = "cc.widget.customer";
  const LANGUAGE_KEY = "cc.widget.lang";
  // Mirrors the server's limits (chat.max_message_chars default, the name field);
  // a server set lower still answers with an error that is shown.
  const MAX_MESSAGE_CHARS = 4000;
  const MAX_NAME_CHARS = 100;
  // The agent console is told at most this often that the customer is typing.
  const TYPING_EVERY_MS = 2000;
  // The agent's typing hint disappears when no new one arrives for this long.
  const TYPING_SHOWN_MS = 5000;
  // Reconnecting backs off from the first to the last delay.
  const RECONNECT_FIRST_MS = 500;
  const RECONNECT_LAST_MS = 30000;
  // A page load that resumes quickly shows no "reconnecting" banner at all.
  const QUIET_RESUME_MS = 1200;

  const STRINGS = {
    en: {
      launcher: "Chat with us",
      launcher_unread: "Chat with us ({count} unread)",
      launcher_close: "Close the chat window",
      title: "Chat with us",
      "subtitle.form": "We usually reply within a few minutes.",
      "subtitle.starting": "Connecting…",
      "subtitle.waiting": "Waiting for an agent…",
      "subtitle.chatting": "Chatting with {name}",
      "subtitle.chatting_anon": "Chatting with our team",
      "subtitle.ended": "The chat has ended",
      language: "Change language",
      minimize: "Minimize the chat window",
      end: "End chat",
      "form.intro": "Hi! Tell us a little about yourself and we will connect you with an agent.",
      "form.name": "Name",
      "form.email": "Email",
      "form.phone": "Phone",
      "form.message": "How can we help?",
      "form.optional": "(optional)",
      "form.start": "Start chat",
      "form.starting": "Connecting…",
      "form.privacy": "We use these details only to help you in this chat.",
      "invalid.name": "Please enter your name.",
      "invalid.email": "Please enter a valid email address, or leave it empty.",
      "invalid.phone": "Please enter a valid phone number, or leave it empty.",
      "invalid.message": "Please tell us how we can help.",
      "invalid.too_long": "This message is too long ({count} characters at most).",
      "invalid.summary": "Please correct the marked fields.",
      conversation: "Conversation",
      you: "You",
      agent: "Agent",
      said: "{name} said:",
      agent_said: "The agent said:",
      you_said: "You said:",
      "waiting.title": "You are in the queue",
      "waiting.note":
        "An agent will join you shortly. Please keep this page open; if it reloads, your chat continues where it left off.",
      joined: "{name} joined the chat",
      joined_anon: "An agent joined the chat",
      typing: "{name} is typing…",
      typing_anon: "The agent is typing…",
      "input.label": "Your message",
      "input.placeholder": "Type a message…",
      "input.hint": "Press Enter to send, Shift+Enter for a new line.",
      send: "Send",
      sending: "Sending…",
      not_sent: "Not sent.",
      retry: "Try again",
      "confirm.question": "End this chat?",
      "confirm.yes": "End chat",
      "confirm.no": "Keep chatting",
      "ended.customer_ended": "You ended the chat. Thank you for contacting us.",
      "ended.agent_ended": "{name} ended the chat. Thank you for contacting us.",
      "ended.agent_ended_anon": "The agent ended the chat. Thank you for contacting us.",
      "ended.ended": "The chat has ended. Thank you for contacting us.",
      "ended.abandoned": "The chat has ended.",
      "ended.timed_out": "Sorry, no agent was free in time. Please try again later.",
      "ended.overflowed": "Sorry, all our agents are busy. Please try again later.",
      "ended.rejected_full": "Sorry, our queue is full right now. Please try again in a few minutes.",
      "ended.expired": "This chat has ended or has expired.",
      restart: "Start a new chat",
      "link.lost": "Connection lost. Reconnecting…",
      "link.offline": "You are offline. The chat reconnects when your connection is back.",
      "link.back": "Reconnected.",
      "error.connect": "We could not reach the chat service. Please try again in a moment.",
      "error.too_many_chats": "Too many chats were started from your network. Please wait a minute and try again.",
      "error.too_many_messages": "You are sending messages too quickly. Please wait a moment.",
      "error.try_again": "The chat could not start. Please try again.",
      "error.unknown_queue": "Chat is not available right now. Please try again later.",
      "error.bad_identity_token": "We could not confirm your sign-in. Please reload the page and try again.",
      "error.invalid_field": "Some details were not accepted. Please check them and try again.",
      "error.chat_ended": "This chat has ended.",
      "error.other": "Something went wrong. Please try again.",
    },
    "zh-CN": {
      launcher: "在线客服",
      launcher_unread: "在线客服（{count} 条未读）",
      launcher_close: "关闭聊天窗口",
      title: "在线客服",
      "subtitle.form": "我们通常在几分钟内回复。",
      "subtitle.starting": "正在连接…",
      "subtitle.waiting": "正在等待客服接入…",
      "subtitle.chatting": "{name} 正在为您服务",
      "subtitle.chatting_anon": "客服正在为您服务",
      "subtitle.ended": "对话已结束",
      language: "切换语言",
      minimize: "最小化聊天窗口",
      end: "结束对话",
      "form.intro": "您好！请留下您的信息，我们将为您接通客服。",
      "form.name": "姓名",
      "form.email": "电子邮箱",
      "form.phone": "电话",
      "form.message": "请问有什么可以帮您？",
      "form.optional": "（选填）",
      "form.start": "开始对话",
      "form.starting": "正在连接…",
      "form.privacy": "这些信息仅用于本次对话中为您提供帮助。",
      "invalid.name": "请填写您的姓名。",
      "invalid.email": "请填写有效的电子邮箱，或留空。",
      "invalid.phone": "请填写有效的电话号码，或留空。",
      "invalid.message": "请告诉我们需要什么帮助。",
      "invalid.too_long": "消息太长（最多 {count} 个字）。",
      "invalid.summary": "请修改标出的内容。",
      conversation: "对话内容",
      you: "我",
      agent: "客服",
      said: "{name}说：",
      agent_said: "客服说：",
      you_said: "我说：",
      "waiting.title": "您已在排队中",
      "waiting.note": "客服很快就会接入。请不要关闭此页面；页面刷新后，对话会从中断处继续。",
      joined: "{name} 已加入对话",
      joined_anon: "客服已加入对话",
      typing: "{name} 正在输入…",
      typing_anon: "客服正在输入…",
      "input.label": "您的消息",
      "input.placeholder": "输入消息…",
      "input.hint": "按回车键发送，按上档键加回车键换行。",
      send: "发送",
      sending: "正在发送…",
      not_sent: "未发送。",
      retry: "重试",
      "confirm.question": "确定结束本次对话吗？",
      "confirm.yes": "结束对话",
      "confirm.no": "继续对话",
      "ended.customer_ended": "您已结束对话。感谢您的咨询。",
      "ended.agent_ended": "{name} 已结束对话。感谢您的咨询。",
      "ended.agent_ended_anon": "客服已结束对话。感谢您的咨询。",
      "ended.ended": "对话已结束。感谢您的咨询。",
      "ended.abandoned": "对话已结束。",
      "ended.timed_out": "抱歉，暂时没有空闲的客服。请稍后再试。",
      "ended.overflowed": "抱歉，客服都在忙。请稍后再试。",
      "ended.rejected_full": "抱歉，当前排队人数已满。请过几分钟再试。",
      "ended.expired": "此对话已结束或已过期。",
      restart: "开始新的对话",
      "link.lost": "连接中断，正在重新连接…",
      "link.offline": "您已离线。网络恢复后会自动重新连接。",
      "link.back": "已重新连接。",
      "error.connect": "暂时无法连接客服系统，请稍后再试。",
      "error.too_many_chats": "您的网络发起的对话过多，请一分钟后再试。",
      "error.too_many_messages": "您发送消息太快了，请稍候。",
      "error.try_again": "对话未能开始，请重试。",
      "error.unknown_queue": "在线客服暂不可用，请稍后再试。",
      "error.bad_identity_token": "无法确认您的登录状态，请刷新页面后重试。",
      "error.invalid_field": "部分信息未被接受，请检查后重试。",
      "error.chat_ended": "此对话已结束。",
      "error.other": "出错了，请重试。",
    },
  };

  // -- small helpers -------------------------------------------------------------------

  const storage = {
    get(area, key) {
      try {
        const raw = window[area].getItem(key);
        return raw ? JSON.parse(raw) : null;
      } catch {
        return null; // storage blocked (privacy settings) or garbage: start afresh
      }
    },
    set(area, key, value) {
      try {
        if (value == null) window[area].removeItem(key);
        else window[area].setItem(key, JSON.stringify(value));
      } catch {
        // Without storage the chat still works; it just cannot survive a reload.
      }
    },
  };

  /** el("button", {class: "x", onclick: f}, child, "text"): never parses markup. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child == null || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function icon(path) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const shape = document.createElementNS(SVG_NS, "path");
    shape.setAttribute("d", path);
    svg.append(shape);
    return svg;
  }
  const ICONS = {
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z",
    down: "M6 9l6 6 6-6",
    send: "M3 20l18-8L3 4v6l12 2-12 2z",
  };

  function nowIso() {
    return new Date().toISOString();
  }

  function randomId() {
    return Math.random().toString(36).slice(2) + Date.now().toString(36);
  }

  // -- language ------------------------------------------------------------------------

  function pickLanguage(value) {
    const lower = String(value || "").toLowerCase();
    if (!lower) return null;
    return lower.startsWith("zh") ? "zh-CN" : lower.startsWith("en") ? "en" : null;
  }

  function initialLanguage() {
    const chosen = storage.get("localStorage", LANGUAGE_KEY);
    if (LANGUAGES.includes(chosen)) return chosen;
    const configured = pickLanguage(script.dataset.language);
    if (configured) return configured;
    for (const lang of navigator.languages || [navigator.language]) {
      const found = pickLanguage(lang);
      if (found) return found;
    }
    return "en";
  }

  let language = initialLanguage();

  function t(key, vars) {
    const text = STRINGS[language][key] ?? STRINGS.en[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (_, name) =>
      vars && name in vars ? String(vars[name]) : "",
    );
  }

  /** Show a translated string in node, remembering it so a language switch redraws it. */
  function say(node, key, vars, attribute) {
    const slot = attribute ? `t${attribute}` : "t";
    node.dataset[slot] = key;
    node.dataset[`${slot}Vars`] = vars ? JSON.stringify(vars) : "";
    const text = t(key, vars);
    if (attribute === "Label") node.setAttribute("aria-label", text);
    else if (attribute === "Title") node.title = text;
    else if (attribute === "Placeholder") node.placeholder = text;
    else node.textContent = text;
    return node;
  }

  function retranslate(root) {
    for (const [attribute, selector] of [
      ["", "[data-t]"],
      ["Label", "[data-t-label]"],
      ["Title", "[data-t-title]"],
      ["Placeholder", "[data-t-placeholder]"],
    ]) {
      const slot = attribute ? `t${attribute}` : "t";
      for (const node of root.querySelectorAll(selector)) {
        const vars = node.dataset[`${slot}Vars`];
        say(node, node.dataset[slot], vars ? JSON.parse(vars) : null, attribute);
      }
    }
    for (const node of root.querySelectorAll("time[datetime]")) {
      node.textContent = clock(node.getAttribute("datetime"));
    }
  }

  function clock(iso) {
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) return "";
    return new Intl.DateTimeFormat(language, { hour: "numeric", minute: "2-digit" }).format(when);
  }

  // -- the elements --------------------------------------------------------------------

  const ui = {};

  function field(id, key, control, required) {
    const error = el("p", { class: "field-error", id: `${id}-error`, hidden: true });
    control.id = id;
    control.setAttribute("aria-describedby", error.id);
    if (required) control.setAttribute("aria-required", "true");
    control.addEventListener("input", () => showFieldError(control, null));
    // Required fields are the rule, so only the optional ones are marked.
    const badge = required ? null : say(el("span", { class: "badge" }), "form.optional");
    return el(
      "div",
      { class: "field" },
      el("label", { for: id }, say(el("span"), key), " ", badge),
      control,
      error,
    );
  }

  function build() {
    ui.launcherLabel = el("span", { class: "launcher-label" });
    ui.unread = el("span", {
      class: "unread",
      id: "cc-unread",
      hidden: true,
      "aria-hidden": "true",
    });
    ui.launcher = el(
      "button",
      {
        type: "button",
        id: "cc-launcher",
        class: "launcher",
        "aria-expanded": "false",
        "aria-controls": "cc-panel",
        onclick: () => (panelOpen() ? closePanel() : openPanel(true)),
      },
      el("span", { class: "launcher-icon open-icon" }, icon(ICONS.chat)),
      el("span", { class: "launcher-icon close-icon" }, icon(ICONS.down)),
      ui.launcherLabel,
      ui.unread,
    );

    ui.title = say(el("h2", { id: "cc-title", class: "title" }), "title");
    ui.subtitle = el("p", { id: "cc-subtitle", class: "subtitle" });
    ui.language = el(
      "button",
      { type: "button", id: "cc-language", class: "head-button language", onclick: switchLanguage },
      el("span", { class: "to-zh", lang: "zh-CN" }, "中文"),
      el("span", { class: "to-en", lang: "en" }, "English"),
    );
    say(ui.language, "language", null, "Title");
    ui.end = say(
      el("button", { type: "button", id: "cc-end", class: "head-button end", hidden: true }),
      "end",
    );
    ui.end.addEventListener("click", askToEnd);
    ui.minimize = say(
      el(
        "button",
        { type: "button", id: "cc-close", class: "head-button round", onclick: () => closePanel() },
        icon(ICONS.down),
      ),
      "minimize",
      null,
      "Label",
    );

    ui.confirmYes = say(
      el("button", { type: "button", id: "cc-confirm-end", class: "danger", onclick: endChat }),
      "confirm.yes",
    );
    ui.confirmNo = say(
      el("button", {
        type: "button",
        id: "cc-confirm-cancel",
        class: "quiet",
        onclick: keepChatting,
      }),
      "confirm.no",
    );
    ui.confirm = el(
      "div",
      { id: "cc-confirm", class: "confirm", role: "group", hidden: true },
      say(el("p", { id: "cc-confirm-question" }), "confirm.question"),
      el("div", { class: "confirm-buttons" }, ui.confirmNo, ui.confirmYes),
    );
    ui.confirm.setAttribute("aria-labelledby", "cc-confirm-question");

    ui.banner = el("div", { id: "cc-banner", class: "banner", role: "status" });

    // The pre-chat form: the browser's own validation bubbles would speak the
    // browser's language, not the widget's, so the checks are ours (novalidate).
    ui.name = el("input", { name: "name", autocomplete: "name", maxlength: MAX_NAME_CHARS });
    ui.email = el("input", { name: "email", type: "email", autocomplete: "email", maxlength: 254 });
    ui.phone = el("input", { name: "phone", type: "tel", autocomplete: "tel", maxlength: 40 });
    ui.first = el("textarea", { name: "message", rows: 3, maxlength: MAX_MESSAGE_CHARS });
    ui.formError = el("p", { id: "cc-form-error", class: "form-error", role: "alert" });
    ui.start = say(
      el("button", { type: "submit", id: "cc-start", class: "primary" }),
      "form.start",
    );
    ui.fields = el(
      "fieldset",
      { class: "fields" },
      field("cc-name", "form.name", ui.name, true),
      field("cc-email", "form.email", ui.email, false),
      field("cc-phone", "form.phone", ui.phone, false),
      field("cc-message", "form.message", ui.first, true),
    );
    ui.form = el(
      "form",
      { id: "cc-form", class: "prechat", novalidate: true, onsubmit: submitForm },
      say(el("p", { class: "intro" }), "form.intro"),
      ui.fields,
      ui.formError,
      ui.start,
      say(el("p", { class: "privacy" }), "form.privacy"),
    );

    ui.messages = el("div", {
      id: "cc-messages",
      class: "messages",
      role: "log",
      "aria-live": "polite",
      tabindex: "0",
    });
    say(ui.messages, "conversation", null, "Label");
    ui.waiting = el(
      "div",
      { id: "cc-waiting", class: "waiting", hidden: true },
      el("span", { class: "dots", "aria-hidden": "true" }, el("i"), el("i"), el("i")),
      el(
        "div",
        {},
        say(el("p", { class: "waiting-title" }), "waiting.title"),
        say(el("p", { class: "waiting-note" }), "waiting.note"),
      ),
    );
    ui.typing = el("div", { id: "cc-typing", class: "typing", "aria-live": "polite" });
    ui.endedText = el("p", { id: "cc-ended-text" });
    ui.restart = say(
      el("button", { type: "button", id: "cc-restart", class: "primary", onclick: restart }),
      "restart",
    );
    ui.ended = el(
      "div",
      { id: "cc-ended", class: "ended", hidden: true },
      ui.endedText,
      ui.restart,
    );

    ui.input = el("textarea", {
      id: "cc-input",
      rows: 1,
      maxlength: MAX_MESSAGE_CHARS,
      "aria-describedby": "cc-input-hint",
      enterkeyhint: "send",
    });
    say(ui.input, "input.placeholder", null, "Placeholder");
    ui.input.addEventListener("keydown", composerKey);
    ui.input.addEventListener("input", composerInput);
    ui.send = say(
      el("button", { type: "submit", id: "cc-send", class: "send" }, icon(ICONS.send)),
      "send",
      null,
      "Label",
    );
    ui.composer = el(
      "form",
      { id: "cc-composer", class: "composer", onsubmit: submitMessage },
      say(el("label", { for: "cc-input", class: "visually-hidden" }), "input.label"),
      ui.input,
      say(el("p", { id: "cc-input-hint", class: "visually-hidden" }), "input.hint"),
      ui.send,
    );
    ui.conversation = el(
      "div",
      { id: "cc-conversation", class: "conversation", hidden: true },
      ui.messages,
      ui.waiting,
      ui.typing,
      ui.ended,
      ui.composer,
    );

    ui.panel = el(
      "section",
      {
        id: "cc-panel",
        class: "panel",
        role: "dialog",
        "aria-labelledby": "cc-title",
        "aria-describedby": "cc-subtitle",
        hidden: true,
      },
      el(
        "header",
        { class: "head" },
        el("div", { class: "head-text" }, ui.title, ui.subtitle),
        ui.language,
        ui.end,
        ui.minimize,
      ),
      ui.confirm,
      ui.banner,
      el("div", { class: "body" }, ui.form, ui.conversation),
    );
    ui.panel.addEventListener("keydown", panelKey);

    ui.root = el("div", { class: "root", hidden: true }, ui.panel, ui.launcher);
    const color = script.dataset.color || "";
    if (/^#[0-9a-f]{6}$/i.test(color)) ui.root.style.setProperty("--cc-accent", color);

    const host = el("div", { id: "cc-widget" });
    const shadow = host.attachShadow({ mode: "open" });
    const sheet = el("link", { rel: "stylesheet", href: STYLESHEET });
    // Shown only once styled, so the host page never flashes raw controls.
    const reveal = () => (ui.root.hidden = false);
    sheet.addEventListener("load", reveal);
    sheet.addEventListener("error", reveal);
    shadow.append(sheet, ui.root);
    document.body.append(host);
  }

  // -- state -----------------------------------------------------------------------------

  // phase: "form" | "starting" | "waiting" | "chatting" | "ended"
  let phase = "form";
  // The chat being held, kept in sessionStorage so a reload resumes it:
  // {contactId, resumeToken, agentName, joined, confirmed, inflight, outbox, open}.
  // inflight: messages sent since the last resume (the server does not echo
  // them, so a resume compares them with the transcript to find any lost);
  // outbox: messages written while there was no connection.
  let chat = null;
  let identityToken = script.dataset.identityToken || "";

  let socket = null;
  let ready = false; // the server has answered start/resume on this socket
  let attempts = 0;
  let reconnectTimer = 0;
  let bannerTimer = 0;
  let typingTimer = 0;
  let lastTypingSent = 0;
  let unread = 0;
  let pendingStart = null;

  function saveChat() {
    storage.set("sessionStorage", CHAT_KEY, chat);
  }

  function setPhase(next) {
    phase = next;
    const inChat = next === "waiting" || next === "chatting" || next === "ended";
    ui.form.hidden = inChat;
    ui.conversation.hidden = !inChat;
    ui.conversation.dataset.phase = next;
    ui.panel.dataset.phase = next;
    ui.end.hidden = !(next === "waiting" || next === "chatting");
    ui.waiting.hidden = next !== "waiting";
    ui.ended.hidden = next !== "ended";
    ui.composer.hidden = next === "ended";
    ui.fields.disabled = next === "starting";
    ui.start.disabled = next === "starting";
    say(ui.start, next === "starting" ? "form.starting" : "form.start");
    if (next !== "waiting" && next !== "chatting") hideConfirm();
    if (next === "ended") hideTyping();
    showSubtitle();
  }

  function showSubtitle() {
    if (phase === "chatting") {
      const name = chat && chat.agentName;
      say(ui.subtitle, name ? "subtitle.chatting" : "subtitle.chatting_anon", { name });
    } else {
      say(ui.subtitle, `subtitle.${phase}`);
    }
  }

  // -- panel -----------------------------------------------------------------------------

  function panelOpen() {
    return !ui.panel.hidden;
  }

  function openPanel(focus) {
    ui.panel.hidden = false;
    ui.root.dataset.open = "true";
    ui.launcher.setAttribute("aria-expanded", "true");
    unread = 0;
    showLauncher();
    if (chat) {
      chat.open = true;
      saveChat();
    }
    if (focus) focusCurrent();
    scrollToEnd(true);
  }

  function closePanel() {
    const hadFocus = ui.panel.contains(ui.root.getRootNode().activeElement);
    ui.panel.hidden = true;
    delete ui.root.dataset.open;
    ui.launcher.setAttribute("aria-expanded", "false");
    hideConfirm();
    showLauncher();
    if (chat) {
      chat.open = false;
      saveChat();
    }
    if (hadFocus) ui.launcher.focus();
  }

  function focusCurrent() {
    if (phase === "form") {
      const empty = [ui.name, ui.first].find((input) => !input.value.trim());
      (empty || ui.first).focus();
    } else if (phase === "ended") {
      ui.restart.focus();
    } else if (phase === "waiting" || phase === "chatting") {
      ui.input.focus();
    }
  }

  function showLauncher() {
    say(ui.launcherLabel, "launcher");
    ui.unread.hidden = unread === 0;
    ui.unread.textContent = unread === 0 ? "" : unread > 9 ? "9+" : String(unread);
    if (panelOpen()) say(ui.launcher, "launcher_close", null, "Label");
    else if (unread) say(ui.launcher, "launcher_unread", { count: unread }, "Label");
    else say(ui.launcher, "launcher", null, "Label");
  }

  function panelKey(event) {
    if (event.key !== "Escape") return;
    event.stopPropagation();
    if (!ui.confirm.hidden) keepChatting();
    else closePanel();
  }

  function switchLanguage() {
    setLanguage(language === "en" ? "zh-CN" : "en");
    storage.set("localStorage", LANGUAGE_KEY, language);
    window.dispatchEvent(new CustomEvent("ccwidget:language", { detail: { language } }));
  }

  function setLanguage(lang) {
    const chosen = pickLanguage(lang);
    if (!chosen || chosen === language) return;
    language = chosen;
    applyLanguage();
  }

  function applyLanguage() {
    ui.root.lang = language;
    ui.root.dataset.language = language;
    retranslate(ui.root);
    showLauncher();
  }

  // -- banner ----------------------------------------------------------------------------

  function showBanner(key, kind, delay) {
    clearTimeout(bannerTimer);
    const put = () => {
      say(ui.banner, key);
      ui.banner.dataset.kind = kind;
    };
    if (delay) bannerTimer = setTimeout(put, delay);
    else put();
    if (kind === "ok") bannerTimer = setTimeout(hideBanner, 3000);
  }

  function hideBanner() {
    clearTimeout(bannerTimer);
    delete ui.banner.dataset.t;
    ui.banner.textContent = "";
    delete ui.banner.dataset.kind;
  }

  // -- pre-chat form ---------------------------------------------------------------------

  function showFieldError(control, key, vars) {
    const error = ui.root.querySelector(`#${control.id}-error`);
    if (key) {
      say(error, key, vars);
      error.hidden = false;
      control.setAttribute("aria-invalid", "true");
    } else {
      error.hidden = true;
      control.removeAttribute("aria-invalid");
    }
  }

  function validate() {
    const problems = [];
    const check = (control, key, vars) => {
      showFieldError(control, key, vars);
      if (key) problems.push(control);
    };
    const email = ui.email.value.trim();
    const phone = ui.phone.value.trim();
    const message = ui.first.value;
    check(ui.name, ui.name.value.trim() ? null : "invalid.name");
    check(ui.email, !email || /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email) ? null : "invalid.email");
    const digits = phone.replace(/\D/g, "").length;
    const phoneOk = !phone || (/^\+?[\d\s().-]+$/.test(phone) && digits >= 5 && digits <= 20);
    check(ui.phone, phoneOk ? null : "invalid.phone");
    if (!message.trim()) check(ui.first, "invalid.message");
    else if (message.length > MAX_MESSAGE_CHARS)
      check(ui.first, "invalid.too_long", { count: MAX_MESSAGE_CHARS });
    else check(ui.first, null);
    return problems;
  }

  function submitForm(event) {
    event.preventDefault();
    if (phase !== "form") return;
    const problems = validate();
    if (problems.length) {
      say(ui.formError, "invalid.summary");
      problems[0].focus();
      return;
    }
    formError(null);
    const customer = {
      name: ui.name.value.trim(),
      email: ui.email.value.trim(),
      phone: ui.phone.value.trim(),
    };
    storage.set("sessionStorage", CUSTOMER_KEY, customer);
    pendingStart = { type: "start", name: customer.name, message: ui.first.value, language };
    if (customer.email) pendingStart.email = customer.email;
    if (customer.phone) pendingStart.phone = customer.phone;
    if (script.dataset.queue) pendingStart.queue = script.dataset.queue;
    if (identityToken) pendingStart.identity_token = identityToken;
    setPhase("starting");
    connect();
  }

  function formError(key) {
    if (key) say(ui.formError, key);
    else {
      delete ui.formError.dataset.t;
      ui.formError.textContent = "";
    }
  }

  function startFailed(key) {
    pendingStart = null;
    drop();
    setPhase("form");
    formError(key);
    if (panelOpen()) ui.start.focus();
  }

  function prefill() {
    const customer = storage.get("sessionStorage", CUSTOMER_KEY) || {};
    ui.name.value = customer.name || "";
    ui.email.value = customer.email || "";
    ui.phone.value = customer.phone || "";
  }

  // -- the connection --------------------------------------------------------------------

  function connect() {
    clearTimeout(reconnectTimer);
    if (socket) return;
    let ws;
    try {
      ws = new WebSocket(SOCKET_URL.href);
    } catch {
      lost();
      return;
    }
    socket = ws;
    ready = false;
    ws.addEventListener("open", () => {
      if (ws !== socket) return;
      if (pendingStart) transmit(pendingStart);
      else if (chat) {
        transmit({ type: "resume", contact_id: chat.contactId, resume_token: chat.resumeToken });
      }
    });
    ws.addEventListener("message", (event) => {
      if (ws !== socket) return;
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      if (data && typeof data.type === "string") receive(data);
    });
    ws.addEventListener("close", () => {
      if (ws !== socket) return;
      socket = null;
      ready = false;
      lost();
    });
  }

  /** Close the socket on purpose: nothing reconnects. */
  function drop() {
    clearTimeout(reconnectTimer);
    const ws = socket;
    socket = null;
    ready = false;
    if (ws) ws.close(1000);
  }

  function transmit(message) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  function lost() {
    if (phase === "starting") {
      // No token yet, so nothing to resume: the customer starts again.
      startFailed("error.connect");
      return;
    }
    if (!chat || phase === "ended") return;
    showBanner(navigator.onLine === false ? "link.offline" : "link.lost", "warn");
    const delay = Math.min(RECONNECT_LAST_MS, RECONNECT_FIRST_MS * 2 ** attempts);
    attempts += 1;
    // Spread out so that many widgets do not all come back at the same instant.
    reconnectTimer = setTimeout(connect, delay * (0.75 + Math.random() / 2));
  }

  function receive(data) {
    switch (data.type) {
      case "queued":
        return queued(data);
      case "resumed":
        return resumed(data);
      case "agent_joined":
        return agentJoined(data.agent_name);
      case "message":
        if (data.from === "agent") agentMessage(data.text, data.at);
        return undefined;
      case "typing":
        if (data.from === "agent") showTyping();
        return undefined;
      case "ended":
        return finish(data.reason);
      case "error":
        return serverError(data.code);
      default:
        return undefined;
    }
  }

  function queued(data) {
    if (!pendingStart) return;
    const first = pendingStart.message;
    pendingStart = null;
    ready = true;
    attempts = 0;
    chat = {
      contactId: data.contact_id,
      resumeToken: data.resume_token,
      agentName: "",
      joined: false,
      confirmed: 1,
      inflight: [],
      outbox: [],
      open: panelOpen(),
    };
    saveChat();
    ui.first.value = "";
    ui.messages.replaceChildren();
    setPhase("waiting");
    addMessage("customer", first, nowIso());
    if (panelOpen()) ui.input.focus();
  }

  function resumed(data) {
    if (!chat) return;
    ready = true;
    const reconnecting = attempts > 0 || ui.banner.dataset.kind === "warn";
    attempts = 0;
    const transcript = Array.isArray(data.transcript) ? data.transcript : [];
    const fromCustomer = transcript.filter((entry) => entry.from === "customer").length;
    // Messages are handled in order, so those that arrived are the first ones.
    const arrived = Math.max(0, fromCustomer - chat.confirmed);
    const resend = [...chat.inflight.slice(arrived), ...chat.outbox];
    chat.confirmed = fromCustomer;
    chat.inflight = [];
    chat.outbox = [];
    if (typeof data.agent_name === "string" && data.agent_name) {
      // An agent joined, perhaps while this page was away.
      chat.joined = true;
      chat.agentName = data.agent_name;
    }
    if (!chat.joined && transcript.some((entry) => entry.from === "agent")) chat.joined = true;
    saveChat();

    ui.messages.replaceChildren();
    let noticed = false;
    for (const entry of transcript) {
      if (entry.from === "agent" && !noticed) {
        joinedNotice();
        noticed = true;
      }
      addMessage(entry.from === "agent" ? "agent" : "customer", entry.text, entry.at);
    }
    if (chat.joined && !noticed) joinedNotice();
    setPhase(chat.joined ? "chatting" : "waiting");
    for (const item of resend) sendMessage(item.text);
    if (reconnecting) showBanner("link.back", "ok");
    else hideBanner();
    scrollToEnd(true);
  }

  function agentJoined(name) {
    if (!chat) return;
    chat.joined = true;
    chat.agentName = typeof name === "string" ? name : "";
    saveChat();
    joinedNotice();
    setPhase("chatting");
    noteUnread();
  }

  function joinedNotice() {
    const name = chat && chat.agentName;
    addNotice(name ? "joined" : "joined_anon", { name });
  }

  function agentMessage(text, at) {
    if (!chat) return;
    hideTyping();
    if (phase === "waiting") {
      // The agent joined while this page was away; the text proves it.
      chat.joined = true;
      saveChat();
      setPhase("chatting");
    }
    addMessage("agent", text, at);
    noteUnread();
  }

  function finish(reason) {
    if (phase === "ended") return;
    const name = chat && chat.agentName;
    chat = null;
    saveChat();
    drop();
    hideBanner();
    const known = STRINGS.en[`ended.${reason}`] ? reason : "ended";
    if (known === "agent_ended" && !name) say(ui.endedText, "ended.agent_ended_anon");
    else say(ui.endedText, `ended.${known}`, { name });
    const hadFocus = ui.panel.contains(ui.root.getRootNode().activeElement);
    setPhase("ended");
    scrollToEnd(true);
    if (hadFocus) ui.restart.focus();
    if (known !== "customer_ended" && known !== "expired") noteUnread();
  }

  function serverError(code) {
    const key = STRINGS.en[`error.${code}`] ? `error.${code}` : "error.other";
    if (phase === "starting") {
      startFailed(key);
      return;
    }
    if (code === "cannot_resume") {
      finish("expired");
      return;
    }
    if (code === "chat_ended") {
      finish("ended");
      return;
    }
    if (chat && (code === "too_many_messages" || code === "invalid_field")) {
      const refused = chat.inflight.pop();
      saveChat();
      if (refused) markFailed(refused.id);
    }
    showBanner(key, "error");
    bannerTimer = setTimeout(hideBanner, 6000);
  }

  // -- messages --------------------------------------------------------------------------

  const LINK = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

  /** Text with web addresses made into links, all built as nodes, never as markup. */
  function linked(text) {
    const parts = [];
    let last = 0;
    for (const match of text.matchAll(LINK)) {
      parts.push(text.slice(last, match.index));
      parts.push(
        el(
          "a",
          { href: match[0], target: "_blank", rel: "noopener noreferrer nofollow" },
          match[0],
        ),
      );
      last = match.index + match[0].length;
    }
    parts.push(text.slice(last));
    return parts;
  }

  function addMessage(from, text, at, state, id) {
    const stick = nearEnd();
    const who = from === "agent" ? chat && chat.agentName : null;
    const whoLabel = who
      ? el("span", { class: "who" }, who)
      : say(el("span", { class: "who" }), from === "agent" ? "agent" : "you");
    const said = el("span", { class: "visually-hidden" });
    if (who) say(said, "said", { name: who });
    else say(said, from === "agent" ? "agent_said" : "you_said");
    const stateNode = el("span", { class: "state" });
    const node = el(
      "div",
      { class: "message", "data-from": from },
      said,
      el("div", { class: "bubble" }, from === "agent" ? linked(String(text)) : String(text)),
      el("div", { class: "meta" }, whoLabel, el("time", { datetime: at }, clock(at)), stateNode),
    );
    if (id) node.dataset.id = id;
    if (state) setState(node, state);
    ui.messages.append(node);
    scrollToEnd(stick || from === "customer");
    return node;
  }

  function addNotice(key, vars) {
    const stick = nearEnd();
    const node = el("div", { class: "message", "data-from": "system" });
    node.append(say(el("p", { class: "notice" }), key, vars));
    ui.messages.append(node);
    scrollToEnd(stick);
  }

  function setState(node, state) {
    const slot = node.querySelector(".state");
    slot.replaceChildren();
    if (state) node.dataset.state = state;
    else delete node.dataset.state;
    if (state === "pending") slot.append(say(el("span"), "sending"));
    if (state === "failed") {
      const text = node.querySelector(".bubble").textContent;
      slot.append(
        say(el("span"), "not_sent"),
        " ",
        say(
          el("button", {
            type: "button",
            class: "retry",
            onclick: () => {
              node.remove();
              sendMessage(text);
            },
          }),
          "retry",
        ),
      );
    }
  }

  function markFailed(id) {
    const node = ui.messages.querySelector(`[data-id="${id}"]`);
    if (node) setState(node, "failed");
  }

  function sendMessage(text) {
    const id = randomId();
    const node = addMessage("customer", text, nowIso(), "pending", id);
    if (ready && transmit({ type: "message", text })) {
      chat.inflight.push({ id, text });
      setState(node, null);
    } else {
      chat.outbox.push({ id, text });
    }
    saveChat();
  }

  function nearEnd() {
    const list = ui.messages;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  }

  function scrollToEnd(force) {
    if (force) ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function noteUnread() {
    if (panelOpen()) return;
    unread += 1;
    showLauncher();
  }

  function showTyping() {
    if (phase !== "chatting" && phase !== "waiting") return;
    const name = chat && chat.agentName;
    say(ui.typing, name ? "typing" : "typing_anon", { name });
    ui.typing.dataset.active = "true";
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, TYPING_SHOWN_MS);
  }

  function hideTyping() {
    clearTimeout(typingTimer);
    delete ui.typing.dataset.t;
    delete ui.typing.dataset.active;
    ui.typing.textContent = "";
  }

  // -- composer --------------------------------------------------------------------------

  function composerKey(event) {
    // While an input method is composing (pinyin, for one), Enter picks the
    // characters; it must not send half a sentence.
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) {
      return;
    }
    event.preventDefault();
    ui.composer.requestSubmit();
  }

  function composerInput() {
    ui.input.style.height = "auto";
    ui.input.style.height = `${Math.min(ui.input.scrollHeight, 120)}px`;
    const now = Date.now();
    const due = now - lastTypingSent >= TYPING_EVERY_MS;
    if (phase === "chatting" && ui.input.value && ready && due && transmit({ type: "typing" })) {
      lastTypingSent = now;
    }
  }

  function submitMessage(event) {
    event.preventDefault();
    if (phase !== "waiting" && phase !== "chatting") return;
    const text = ui.input.value;
    if (!text.trim()) return;
    if (text.length > MAX_MESSAGE_CHARS) {
      showBanner("invalid.too_long", "error");
      return;
    }
    ui.input.value = "";
    ui.input.style.height = "";
    lastTypingSent = 0;
    sendMessage(text);
    ui.input.focus();
  }

  // -- ending and starting again ---------------------------------------------------------

  function askToEnd() {
    ui.confirm.hidden = false;
    ui.confirmYes.focus();
  }

  function hideConfirm() {
    ui.confirm.hidden = true;
  }

  function keepChatting() {
    hideConfirm();
    ui.end.focus();
  }

  function endChat() {
    hideConfirm();
    // Sent when possible; otherwise the server ends it after the resume grace period.
    if (ready) transmit({ type: "end" });
    finish("customer_ended");
  }

  function restart() {
    hideTyping();
    ui.messages.replaceChildren();
    prefill();
    ui.first.value = "";
    formError(null);
    setPhase("form");
    focusCurrent();
  }

  // -- start -----------------------------------------------------------------------------

  function init() {
    build();
    applyLanguage();
    prefill();
    chat = storage.get("sessionStorage", CHAT_KEY);
    if (chat && chat.contactId && chat.resumeToken) {
      chat.inflight = Array.isArray(chat.inflight) ? chat.inflight : [];
      chat.outbox = Array.isArray(chat.outbox) ? chat.outbox : [];
      chat.confirmed = Number(chat.confirmed) || 0;
      setPhase(chat.joined ? "chatting" : "waiting");
      // Reopened as the visitor left it, without taking the focus from the page.
      if (chat.open) openPanel(false);
      showBanner("link.lost", "warn", QUIET_RESUME_MS);
      connect();
    } else {
      chat = null;
      setPhase("form");
    }
    window.addEventListener("online", () => {
      if (chat && !socket && phase !== "ended") connect();
    });
    window.addEventListener("offline", () => {
      if (chat && phase !== "ended") showBanner("link.offline", "warn");
    });

    window.CCWidget = Object.freeze({
      open: () => openPanel(true),
      close: () => closePanel(),
      setLanguage,
      identify(token) {
        identityToken = typeof token === "string" ? token : "";
      },
      get language() {
        return language;
      },
    });
    window.dispatchEvent(new CustomEvent("ccwidget:ready"));
  }

  if (document.body) init();
  else document.addEventListener("DOMContentLoaded", init, { once: true });
})();
