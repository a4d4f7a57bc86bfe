// English and Simplified Chinese. Each page registers its own strings;
// markup names them with data-i18n (text), data-i18n-placeholder,
// data-i18n-title and data-i18n-label (aria-label).

const LANGUAGES = ["en", "zh-CN"];
const STORAGE_KEY = "cc.lang";
const dictionaries = { en: {}, "zh-CN": {} };
const listeners = [];

function initial() {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (LANGUAGES.includes(saved)) return saved;
  return (navigator.language || "").toLowerCase().startsWith("zh") ? "zh-CN" : "en";
}

let language = initial();

/** Add strings: register({en: {key: "..."}, "zh-CN": {key: "..."}}). */
export function register(strings) {
  for (const [lang, entries] of Object.entries(strings)) {
    Object.assign((dictionaries[lang] ||= {}), entries);
  }
}

/** The string for key in the current language, with {name} filled from vars. */
export function t(key, vars = {}) {
  const text = dictionaries[language][key] ?? dictionaries.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : ""));
}

/** t() for a value from a closed set (a state, a reason), falling back to the value. */
export function label(group, value) {
  const key = `${group}.${value}`;
  return key in dictionaries[language] || key in dictionaries.en ? t(key) : String(value);
}

export const currentLanguage = () => language;
export const languages = () => LANGUAGES;

export function setLanguage(lang) {
  if (!LANGUAGES.includes(lang)) return;
  language = lang;
  localStorage.setItem(STORAGE_KEY, lang);
  translate(document);
  for (const listener of listeners) listener(lang);
}

/** Call back after every language switch (to redraw what was built from data). */
export function onLanguage(listener) {
  listeners.push(listener);
}

/** Fill every element marked with data-i18n* under root. */
export function translate(root) {
  document.documentElement.lang = language;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }
}

/** "1:05", "12:30", "1:02:03" for a number of seconds. */
export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** A date and time in the current language's format. */
export function dateTime(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(language, { dateStyle: "medium", timeStyle: "short" }).format(
    new Date(iso),
  );
}

export function time(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(language, { timeStyle: "short" }).format(new Date(iso));
}

/** A fraction as a percentage ("—" when unknown). */
export function percent(value) {
  return value == null ? "—" : `${(value * 100).toFixed(1)}%`;
}

/** A language switcher: a <select> that switches the page's language. */
export function languageSelect() {
  const select = document.createElement("select");
  select.className = "language";
  select.dataset.i18nLabel = "common.language";
  for (const [lang, name] of [
    ["en", "English"],
    ["zh-CN", "简体中文"],
  ]) {
    const option = document.createElement("option");
    option.value = lang;
    option.textContent = name;
    option.lang = lang;
    select.append(option);
  }
  select.value = language;
  select.addEventListener("change", () => setLanguage(select.value));
  return select;
}

register({
  en: {
    "common.language": "Language",
    "common.username": "User name",
    "common.password": "Password",
    "common.login": "Log in",
    "common.logout": "Log out",
    "common.login_title": "Sign in to the contact center",
    "common.login_failed": "User name or password is wrong.",
    "common.login_throttled": "Too many attempts; try again in a minute.",
    "common.forbidden": "Your role may not open this page.",
    "common.error": "Something went wrong: {message}",
    "common.online": "Connected",
    "common.connecting": "Connecting…",
    "common.offline": "Connection lost, reconnecting…",
    "common.closed": "Disconnected",
    "common.resynced": "Reconnected; the view was refreshed.",
    "common.save": "Save",
    "common.cancel": "Cancel",
    "common.close": "Close",
    "common.search": "Search",
    "common.none": "None",
    "common.loading": "Loading…",
  },
  "zh-CN": {
    "common.language": "语言",
    "common.username": "用户名",
    "common.password": "密码",
    "common.login": "登录",
    "common.logout": "退出",
    "common.login_title": "登录呼叫中心",
    "common.login_failed": "用户名或密码错误。",
    "common.login_throttled": "尝试次数过多，请一分钟后再试。",
    "common.forbidden": "您的角色无权打开此页面。",
    "common.error": "出错了：{message}",
    "common.online": "已连接",
    "common.connecting": "正在连接…",
    "common.offline": "连接中断，正在重连…",
    "common.closed": "已断开",
    "common.resynced": "已重新连接，界面已刷新。",
    "common.save": "保存",
    "common.cancel": "取消",
    "common.close": "关闭",
    "common.search": "搜索",
    "common.none": "无",
    "common.loading": "加载中…",
  },
});
