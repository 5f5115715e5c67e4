#!/usr/bin/env node
// verify_webhook.js: checks signed webhooks with the `standardwebhooks`
// package (npm), an implementation of Standard Webhooks that owes nothing
// to the module under test.  The tests use it to verify the notifications
// that fanbase_notify sends, as a site would.
//
//     NODE_PATH=build/node/node_modules node t/lib/verify_webhook.js < in.json
//
// stdin: one JSON item or a JSON array of items, each
//     {"secret": "whsec_...", "headers": {"webhook-id": ..., ...},
//      "body": "<the raw body, as a string>"}
// ("body_base64" instead of "body" passes bytes that are not UTF-8 text).
// A header value that is an array (a header received several times) is
// joined with ", ", as Node's own HTTP server does.
//
// stdout: one JSON line per item, in order:
//     {"ok":true,"payload":<the verified body, parsed>}
//     {"ok":false,"error":"<why>"}
// The exit status is 0 when every item was read (verified or not), 2 when
// the input or the package is unusable (then one line says why).

"use strict";

let Webhook;
try {
    ({ Webhook } = require("standardwebhooks"));
} catch (e) {
    process.stdout.write(JSON.stringify({
        ok: false,
        error: "cannot load standardwebhooks (NODE_PATH="
            + (process.env.NODE_PATH || "") + "): " + e.message,
    }) + "\n");
    process.exit(2);
}

function verifyOne(item) {
    if (item === null || typeof item !== "object" || Array.isArray(item)) {
        return { ok: false, error: "an item must be an object" };
    }
    const headers = {};
    for (const [name, value] of Object.entries(item.headers || {})) {
        headers[name] = Array.isArray(value) ? value.join(", ") : String(value);
    }
    let body;
    if (typeof item.body_base64 === "string") {
        body = Buffer.from(item.body_base64, "base64");
    } else if (typeof item.body === "string") {
        body = item.body;
    } else {
        return { ok: false, error: "no body" };
    }
    try {
        const wh = new Webhook(item.secret);
        const payload = wh.verify(body, headers);
        return { ok: true, payload: payload === undefined ? null : payload };
    } catch (e) {
        return { ok: false, error: String(e && e.message || e) };
    }
}

const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
    let input;
    try {
        input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch (e) {
        process.stdout.write(JSON.stringify({
            ok: false, error: "input is not JSON: " + e.message }) + "\n");
        process.exit(2);
    }
    const items = Array.isArray(input) ? input : [input];
    let out = "";
    for (const item of items) {
        out += JSON.stringify(verifyOne(item)) + "\n";
    }
    process.stdout.write(out);
});
