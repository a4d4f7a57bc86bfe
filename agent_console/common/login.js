// The sign-in form shared by the console and the wallboard.

import { currentUser, login } from "./api.js";
import { h, fill } from "./dom.js";
import { languageSelect, t, translate } from "./i18n.js";

/**
 * Resolve with the logged-in user ({user, csrf_token}), showing the sign-in
 * form in `container` first when there is no session.
 */
export async function signIn(container) {
  const me = await currentUser();
  if (me) return me;
  return new Promise((resolve) => {
    const error = h("p", { class: "form-error", role: "alert", id: "login-error" });
    const username = h("input", {
      id: "login-username",
      name: "username",
      autocomplete: "username",
      required: true,
    });
    const password = h("input", {
      id: "login-password",
      name: "password",
      type: "password",
      autocomplete: "current-password",
      required: true,
    });
    const form = h(
      "form",
      { class: "login card", id: "login-form" },
      h("h1", { "data-i18n": "common.login_title" }),
      h("label", { for: "login-username", "data-i18n": "common.username" }),
      username,
      h("label", { for: "login-password", "data-i18n": "common.password" }),
      password,
      error,
      h("button", { type: "submit", class: "primary", id: "login-submit", "data-i18n": "common.login" }),
      languageSelect(),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        const me = await login(username.value, password.value);
        resolve(me);
      } catch (failure) {
        error.textContent =
          failure.status === 429 ? t("common.login_throttled") : t("common.login_failed");
        password.select();
      }
    });
    fill(container, form);
    translate(container);
    username.focus();
  });
}
