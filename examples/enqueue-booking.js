// Enqueue a booking request on sessionpack's broker with celery-node, as a Node.js frontend would.
//
//   BROKER_URL=redis://127.0.0.1:6379/0 node enqueue-booking.js request.json
//
// The message: task `sessionpack.submit_booking`, the request object as its ONE positional
// argument (an object, not a JSON string), JSON-serialized, on the default queue `celery`.
// celery-node speaks protocol v2 by default (v1 works too). It insists on a result backend, so
// give it one (sessionpack keeps no results: the answer comes back as webhooks, or by reading
// GET /api/v1/bookings/{booking_id}).
//
// Prints {"request_id", "booking_id", "task_id"}: the booking id is derived from the request_id
// (sha256 of "sessionpack/booking:" + request_id, base32, lower case, first 24 characters, after
// "bk_"), so the frontend knows it before the worker has made the booking.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const celery = require("celery-node");

function bookingIdFor(requestId) {
  const digest = crypto.createHash("sha256").update("sessionpack/booking:" + requestId).digest();
  return "bk_" + base32(digest).toLowerCase().slice(0, 24);
}

function base32(bytes) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0, value = 0, out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

async function main() {
  const file = process.argv[2];
  if (!file) {
    console.error("usage: node enqueue-booking.js REQUEST.json   (BROKER_URL, RESULT_BACKEND optional)");
    process.exit(2);
  }
  const request = JSON.parse(fs.readFileSync(file, "utf8"));
  const broker = process.env.BROKER_URL || "redis://127.0.0.1:6379/0";
  const backend = process.env.RESULT_BACKEND || broker;
  const client = celery.createClient(broker, backend, process.env.CELERY_QUEUE || "celery");
  if (process.env.CELERY_PROTOCOL === "1") client.conf.TASK_PROTOCOL = 1; // v2 is the default
  const task = client.createTask("sessionpack.submit_booking");
  const result = task.applyAsync([request]); // one positional argument: the request object
  console.log(JSON.stringify({request_id: request.request_id, booking_id: bookingIdFor(request.request_id),
                              task_id: result.taskId}));
  // celery-node publishes once its connections are ready; let the message leave before closing.
  await client.isReady();
  await new Promise((resolve) => setTimeout(resolve, 300));
  await client.disconnect();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
