// The service's API as the page calls it: same origin, the browser's session (the proxy's
// assertion or the session cookie) and, for a change, the session's CSRF header.

let csrf = null;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function answer(response) {
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.issue && body.issue[0] && (body.issue[0].diagnostics || body.issue[0].details?.text);
    throw new ApiError(response.status, detail || `HTTP ${response.status}`);
  }
  return body;
}

export async function session() {
  const response = await fetch('/dashboard/session', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  const body = await response.json().catch(() => ({ signed_in: false }));
  if (body.signed_in) csrf = body.csrf;
  return body;
}

export async function get(path) {
  const response = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  return answer(response);
}

export async function post(path, body) {
  const response = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { Accept: 'application/json', 'Content-Type': 'application/json', 'X-LRT-CSRF': csrf || '' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return answer(response);
}

// A change whose body is text of `contentType` (an adjudication CSV), not JSON.
export async function postText(path, text, contentType) {
  const response = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { Accept: 'application/json', 'Content-Type': contentType, 'X-LRT-CSRF': csrf || '' },
    body: text,
  });
  return answer(response);
}
