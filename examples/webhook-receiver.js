// A frontend's endpoint for sessionpack's outgoing webhooks: verifies the signature, drops
// repeats by event id, and prints each event as one JSON line.
//
//   WEBHOOK_SECRET=... PORT=4000 node webhook-receiver.js
//
// Header:  Sessionpack-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">
// Verify over the RAW body bytes (not re-serialized JSON), compare in constant time, and refuse
// a timestamp more than 5 minutes away (a replayed request). Answer 2xx quickly: anything else is
// retried by sessionpack with growing waits for 3 days, so the same event may come again.
"use strict";

const crypto = require("crypto");
const http = require("http");

const TOLERANCE_SECONDS = 300;

function verify(secret, rawBody, header, now = Date.now() / 1000) {
  if (!header) return false;
  const parts = header.split(",").map((p) => p.split("="));
  const t = Number((parts.find(([k]) => k === "t") || [])[1]);
  if (!Number.isFinite(t) || Math.abs(now - t) > TOLERANCE_SECONDS) return false;
  const expected = crypto.createHmac("sha256", secret).update(`${t}.`).update(rawBody).digest();
  return parts.filter(([k]) => k === "v1").some(([, v]) => {
    const given = Buffer.from(v || "", "hex");
    return given.length === expected.length && crypto.timingSafeEqual(given, expected);
  });
}

function serve(secret, port, onEvent) {
  const seen = new Set();
  const server = http.createServer((req, res) => {
    if (req.method !== "POST") {
      res.writeHead(405).end();
      return;
    }
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      if (!verify(secret, raw, req.headers["sessionpack-signature"])) {
        res.writeHead(400).end("bad signature");
        return;
      }
      const event = JSON.parse(raw.toString("utf8"));
      res.writeHead(200).end("ok");
      if (seen.has(event.id)) return; // delivered at least once: drop repeats
      seen.add(event.id);
      onEvent(event);
    });
  });
  server.listen(port, "127.0.0.1");
  return server;
}

if (require.main === module) {
  const secret = process.env.WEBHOOK_SECRET;
  if (!secret) {
    console.error("set WEBHOOK_SECRET to the value of the endpoint's secret_env variable");
    process.exit(2);
  }
  const server = serve(secret, Number(process.env.PORT || 4000), (event) => {
    const data = event.data || {};
    console.log(JSON.stringify({id: event.id, type: event.type, booking_id: data.id || data.booking_id || null,
                                status: data.status || null, request_id: data.request_id || null}));
  });
  server.on("listening", () => console.error(`listening on ${server.address().port}`));
}

module.exports = {verify, serve};
