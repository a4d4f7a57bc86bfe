// The REST API (/api/v1) with the session cookie and the CSRF token.

let csrf = "";

// The server answers every failure with {"error": {code, message, ...}}.
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && typeof body.error === "object" && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
    this.body = body;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (csrf) headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Query string from an object, leaving out empty values. */
export function query(params) {
  const entries = Object.entries(params).filter(([, v]) => v !== "" && v != null);
  return entries.length ? `?${new URLSearchParams(entries)}` : "";
}

/** The logged-in user ({user, csrf_token}) or null. */
export async function currentUser() {
  try {
    const me = await api("GET", "/auth/me");
    csrf = me.csrf_token;
    return me;
  } catch (error) {
    if (error.status === 401) return null;
    throw error;
  }
}

export async function login(username, password) {
  const me = await api("POST", "/auth/login", { username, password });
  csrf = me.csrf_token;
  return me;
}

export async function logout() {
  try {
    await api("POST", "/auth/logout");
  } finally {
    csrf = "";
  }
}

export const csrfToken = () => csrf;
