// The supervisor wallboard: sign in, then the live view (#live) fed by the
// supervisor socket, and the reports view (#reports).

import "./strings.js";
import { api, csrfToken, logout } from "../common/api.js";
import { $, fill, h } from "../common/dom.js";
import { label, languageSelect, onLanguage, t, translate } from "../common/i18n.js";
import { LiveSocket } from "../common/live.js";
import { signIn } from "../common/login.js";
import { Board } from "./board.js";
import { Reports } from "./reports.js";

const ROLES = ["supervisor", "admin"];
const TOAST_MS = 4000;
const TICK_MS = 1000;

let toastTimer = null;

function toast(text) {
  const el = $("#toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.hidden = true;
  }, TOAST_MS);
}

/** What to tell the supervisor about a refused command or a failed request. */
function errorText(error) {
  const code = (error && error.code) || "";
  const known = label("wb.error", code);
  if (known !== code) return known;
  return t("common.error", { message: (error && error.message) || code });
}

function topbar(me, socketState) {
  $("#topbar").hidden = false;
  $("#who").textContent = me.user.display_name || me.user.username;
  $("#who").title = t("wb.signed_in_as", { name: me.user.username });
  fill($("#language-slot"), languageSelect());
  $("#logout").addEventListener("click", async () => {
    try {
      await logout();
    } finally {
      socketState.stop();
      location.reload();
    }
  });
}

function showConnection(state) {
  const el = $("#connection");
  el.dataset.state = state;
  el.textContent = t(`common.${state}`);
}

function forbidden(app) {
  $("#tabs").hidden = true;
  $("#connection").hidden = true;
  fill(
    app,
    h("p", { class: "card forbidden", role: "alert", id: "forbidden", "data-i18n": "common.forbidden" }),
  );
  translate(document);
}

function route(views) {
  const reports = location.hash === "#reports";
  views.live.hidden = reports;
  views.reports.hidden = !reports;
  for (const [id, on] of [
    ["#tab-live", !reports],
    ["#tab-reports", reports],
  ]) {
    if (on) $(id).setAttribute("aria-current", "page");
    else $(id).removeAttribute("aria-current");
  }
  if (reports) views.reportsView.showFirst();
}

async function start() {
  translate(document);
  const app = $("#app");
  let me;
  try {
    me = await signIn(app);
  } catch (error) {
    fill(app, h("p", { class: "card form-error", role: "alert", text: errorText(error) }));
    return;
  }
  let socket = null;
  topbar(me, { stop: () => socket && socket.stop() });
  if (!ROLES.includes(me.user.role)) {
    forbidden(app);
    return;
  }

  const live = h("section", { id: "live", class: "view live" });
  const reports = h("section", { id: "reports", class: "view reports" });
  fill(app, live, reports);
  const actions = {
    send: (message) => (socket ? socket.send(message) : Promise.reject({ code: "disconnected" })),
    toast,
    errorText,
  };
  const board = new Board(live, actions);
  const reportsView = new Reports(reports, actions);
  const views = { live, reports, reportsView };

  let snapshots = 0;
  socket = new LiveSocket(
    "/ws/supervisor",
    csrfToken,
    (message) => {
      switch (message.type) {
        case "welcome":
          board.forgetMonitors();
          break;
        case "resync":
          if (snapshots) toast(t("common.resynced"));
          break;
        case "snapshot":
          snapshots += 1;
          board.snapshot(message);
          if ([...board.queues.keys()].some((name) => !board.queueInfo.has(name))) loadQueues();
          break;
        case "queue":
          board.queue(message);
          if (!board.queueInfo.has(message.queue)) loadQueues();
          break;
        case "agent":
          board.agent(message);
          break;
        case "monitor":
          board.monitor(message);
          break;
        default:
          break;
      }
    },
    showConnection,
  );

  let loadingQueues = null;
  // Display names and the report's queue list; loaded again when a new queue shows up.
  function loadQueues() {
    loadingQueues ||= api("GET", "/queues")
      .then((reply) => {
        board.setQueueInfo(reply.items);
        reportsView.setQueues(reply.items);
      })
      .catch((error) => toast(errorText(error)))
      .finally(() => {
        loadingQueues = null;
      });
    return loadingQueues;
  }

  onLanguage(() => {
    board.relabel();
    reportsView.relabel();
    showConnection($("#connection").dataset.state);
  });
  window.addEventListener("hashchange", () => route(views));
  translate(document);
  route(views);
  showConnection("connecting");
  await loadQueues();
  socket.start();
  board.startToday();
  setInterval(() => board.tick(), TICK_MS);
}

start();
