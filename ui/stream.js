import { unauthorized } from "./api.js";

// Server-sent events read with fetch (EventSource cannot send headers); on a lost
// connection it reconnects with Last-Event-ID, so the server replays what was missed.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function parseBlock(block) {
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("id:")) id = line.slice(3).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  return { id, data: data.length ? data.join("\n") : null };
}

// Subscribe to a RESTCONF stream; returns a function that ends the subscription.
// onEvent(notification) gets the ietf-restconf:notification object; onStatus gets
// "connecting", "live", "reconnecting" or "ended".  It keeps trying (a session that
// ended makes it wait for the next login) until the returned function is called.
export function subscribe(stream, onEvent, onStatus = () => {}) {
  let lastId = null;
  let stopped = false;
  let controller = null;
  (async () => {
    let delay = 500;
    while (!stopped) {
      controller = new AbortController();
      onStatus(lastId === null ? "connecting" : "reconnecting");
      try {
        const headers = { Accept: "text/event-stream" };
        if (lastId !== null) headers["Last-Event-ID"] = lastId;
        const response = await fetch(`/restconf/streams/${stream}/json`, {
          headers, credentials: "same-origin", signal: controller.signal, cache: "no-store",
        });
        if (response.status === 401) unauthorized();
        if (!response.ok) throw new Error(`stream: HTTP ${response.status}`);
        onStatus("live");
        delay = 500;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const { id, data } = parseBlock(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (id !== null) lastId = id;
            if (data !== null) {
              try { onEvent(JSON.parse(data)["ietf-restconf:notification"] || {}); }
              catch (e) { console.warn("unreadable event", e); }
            }
          }
        }
      } catch (e) {
        if (stopped) return;
      }
      if (stopped) return;
      onStatus("reconnecting");
      await sleep(delay);
      delay = Math.min(delay * 2, 8000);
    }
  })();
  return () => { stopped = true; if (controller) controller.abort(); onStatus("ended"); };
}
