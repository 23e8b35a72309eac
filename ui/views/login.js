// The login form: the password goes to /ui/login once and is not kept anywhere.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, login } from "../api.js";
import { html } from "../html.js";

export function LoginView({ notice, onLogin, user = "" }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const userField = useRef(null);
  const passwordField = useRef(null);
  useEffect(() => {
    const field = user ? passwordField.current : userField.current;
    if (field) field.focus();
  }, []);
  const submit = async (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    setBusy(true);
    setError(null);
    try {
      const session = await login(form.user.value, form.password.value);
      form.password.value = "";
      onLogin(session);
    } catch (e) {
      form.password.value = "";
      setError(e instanceof ApiError && e.status === 429
        ? "Too many failed logins: wait a moment and try again."
        : e instanceof ApiError && e.status === 401
          ? "The user name or password is wrong." : `Login failed: ${e.message}`);
    } finally {
      setBusy(false);
    }
  };
  return html`
    <div class="login">
      <h1>nfo</h1>
      ${notice && html`<p role="status" class="notice">${notice}</p>`}
      <form onSubmit=${submit} aria-describedby=${error ? "login-error" : undefined}>
        <label for="login-user">User name</label>
        <input id="login-user" name="user" autocomplete="username" required ref=${userField}
               value=${user || undefined} />
        <label for="login-password">Password</label>
        <input id="login-password" name="password" type="password"
               autocomplete="current-password" required ref=${passwordField}
               autofocus=${Boolean(user)} />
        ${error && html`<p id="login-error" role="alert" class="error">${error}</p>`}
        <button type="submit" disabled=${busy}>Log in</button>
      </form>
    </div>`;
}
