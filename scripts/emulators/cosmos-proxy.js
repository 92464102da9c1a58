#!/usr/bin/env node
// A small HTTP proxy in front of @vercel/cosmosdb-server that corrects the
// ways the emulator's answers differ from the real Cosmos DB service, so
// clients (and polyrouter's `cosmos` backend) are written for the real
// service only. No dependencies beyond Node itself.
//
//   node cosmos-proxy.js --listen 127.0.0.1:8081 --target 127.0.0.1:18081
//
// Every correction is listed in docs/backends/cosmos.md; keep the two in step.
// Set COSMOS_PROXY_LOG=1 to log each request and the corrections applied.
"use strict";

const http = require("http");

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function hostPort(text) {
  const i = text.lastIndexOf(":");
  return { host: text.slice(0, i), port: Number(text.slice(i + 1)) };
}

const listen = hostPort(arg("--listen", "127.0.0.1:8081"));
const target = hostPort(arg("--target", "127.0.0.1:18081"));
const verbose = process.env.COSMOS_PROXY_LOG === "1";
const log = (...a) => verbose && console.log(new Date().toISOString(), ...a);

// Collection partition-key paths, by "/dbs/D/colls/C", for scoping queries.
const pkPaths = new Map();

function header(req, name) {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function forward(method, path, headers, body) {
  return new Promise((resolve, reject) => {
    const h = { ...headers, host: `${target.host}:${target.port}` };
    delete h["content-length"];
    delete h["transfer-encoding"];
    if (body && body.length) h["content-length"] = String(body.length);
    const up = http.request(
      { host: target.host, port: target.port, method, path, headers: h },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on("error", reject);
      },
    );
    up.on("error", reject);
    up.end(body);
  });
}

function parseJson(buf) {
  try {
    return JSON.parse(buf.toString("utf8"));
  } catch {
    return undefined;
  }
}

// Correction 1: the account document advertises `https://<emulator port>`
// locations although the emulator runs with --no-ssl behind this proxy; a
// client following them would leave the proxy. Point them at this proxy
// with the scheme the client used (http).
function fixAccount(doc) {
  const self = `http://${listen.host}:${listen.port}/`;
  for (const key of ["writableLocations", "readableLocations"]) {
    for (const loc of doc[key] || []) {
      if (loc.databaseAccountEndpoint) loc.databaseAccountEndpoint = self;
    }
  }
  return doc;
}

// Correction 2: `/pkranges` carries numeric `id`s (and parents) where the
// service sends strings.
function fixRanges(doc) {
  for (const r of doc.PartitionKeyRanges || []) {
    if (typeof r.id === "number") r.id = String(r.id);
    if (Array.isArray(r.parents)) r.parents = r.parents.map(String);
  }
  return doc;
}

async function partitionPath(collPath, headers) {
  if (pkPaths.has(collPath)) return pkPaths.get(collPath);
  const h = { ...headers };
  for (const k of Object.keys(h)) {
    if (k.startsWith("x-ms-documentdb-") || k.startsWith("x-ms-cosmos-") || k === "content-type") delete h[k];
  }
  const res = await forward("GET", collPath, h);
  const coll = parseJson(res.body) || {};
  const paths = ((coll.partitionKey || {}).paths || []).map((p) => p.replace(/^\//, "").split("/"));
  if (res.status === 200) pkPaths.set(collPath, paths);
  return paths;
}

function valueAt(doc, path) {
  let v = doc;
  for (const part of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = v[part];
  }
  return v;
}

// Correction 7: the emulator never expires items. Containers holding an
// item with a `ttl` (or created with a default TTL) are swept before each
// request that touches them: items whose `_ts + ttl` has passed are deleted,
// as the service does in the background (and the service never returns an
// expired item either).
const ttlContainers = new Map(); // collPath -> last sweep (ms)
// `_ts` has whole seconds; the time each item was last written through this
// proxy, in ms, makes expiry as precise as the service's.
const writtenAt = new Map(); // collPath + "\n" + id -> ms
const SWEEP_EVERY_MS = 100;

async function readAll(collPath, headers) {
  const docs = [];
  let continuation;
  for (let i = 0; i < 1000; i += 1) {
    const h = { ...headers };
    if (continuation) h["x-ms-continuation"] = continuation;
    const r = await forward("GET", `${collPath}/docs`, h);
    const body = parseJson(r.body) || {};
    docs.push(...(body.Documents || []));
    continuation = r.headers["x-ms-continuation"];
    if (r.status !== 200 || !continuation) break;
  }
  return docs;
}

async function sweep(collPath, headers) {
  const last = ttlContainers.get(collPath);
  if (last === undefined || Date.now() - last < SWEEP_EVERY_MS) return;
  ttlContainers.set(collPath, Date.now());
  const h = {};
  for (const k of ["authorization", "x-ms-date", "x-ms-version"]) if (headers[k]) h[k] = headers[k];
  const collRes = await forward("GET", collPath, h);
  const coll = parseJson(collRes.body) || {};
  const defaultTtl = typeof coll.defaultTtl === "number" && coll.defaultTtl > 0 ? coll.defaultTtl : undefined;
  const paths = await partitionPath(collPath, h);
  const now = Date.now() / 1000;
  for (const d of await readAll(collPath, h)) {
    const ttl = typeof d.ttl === "number" ? d.ttl : defaultTtl;
    if (ttl === undefined || ttl < 0 || typeof d._ts !== "number") continue;
    const at = writtenAt.get(`${collPath}\n${d.id}`);
    if ((at !== undefined ? at / 1000 : d._ts) + ttl > now) continue;
    const pk = JSON.stringify(paths.map((p) => (valueAt(d, p) === undefined ? null : valueAt(d, p))));
    await forward("DELETE", `${collPath}/docs/${encodeURIComponent(d.id)}`, {
      ...h,
      "x-ms-documentdb-partitionkey": pk,
    });
    log("ttl: deleted expired", collPath, d.id);
  }
}

// Correction 8: transactional batch. The emulator runs a batch's
// operations in order and stops at the first failure (the rest answer 424),
// but (a) reads the partition key of a replace, delete or read operation
// from the operation only, where clients send it once, in the request's
// `x-ms-documentdb-partitionkey` header (the emulator then fails with 500),
// (b) does not undo the operations before the failing one although the
// request asks for an atomic batch (`x-ms-cosmos-batch-atomic`), and
// (c) answers 200 where the service answers 207 Multi-Status, with every
// operation but the failing one 424 Failed Dependency. The proxy gives each
// operation the header's partition key, reads the items an atomic batch
// touches before forwarding it, and when an operation failed puts them
// back (deleting created ones, re-writing replaced or deleted ones) before
// answering as the service does. Faithful for a single writer: another
// request may see the batch's effects between its forwarding and the undo,
// and an item put back gets a new `_etag` (the service would keep it).
const BATCH_SYSTEM = ["_rid", "_self", "_etag", "_ts", "_attachments"];

function batchOpId(op) {
  if (!op || typeof op !== "object") return undefined;
  if (op.resourceBody && op.resourceBody.id !== undefined) return op.resourceBody.id;
  return op.id;
}

async function runBatch(req, url, coll, headers, ops, fixes) {
  const pk = header(req, "x-ms-documentdb-partitionkey");
  const atomic = String(header(req, "x-ms-cosmos-batch-atomic")).toLowerCase() === "true";
  if (pk) {
    for (const op of ops) if (op && typeof op === "object" && op.partitionKey === undefined) op.partitionKey = pk;
    fixes.push("batch-partition-key");
  }
  const h = {};
  for (const k of ["authorization", "x-ms-date", "x-ms-version"]) if (headers[k]) h[k] = headers[k];
  if (pk) h["x-ms-documentdb-partitionkey"] = pk;
  // Items as they were, by id (undefined: absent), for an atomic batch's undo.
  const before = new Map();
  if (atomic) {
    for (const op of ops) {
      const id = batchOpId(op);
      if (id === undefined || before.has(id)) continue;
      const r = await forward("GET", `${coll}/docs/${encodeURIComponent(id)}`, h);
      before.set(id, r.status === 200 ? parseJson(r.body) : undefined);
    }
  }
  const up = await forward("POST", url, headers, Buffer.from(JSON.stringify(ops)));
  const results = parseJson(up.body);
  if (up.status !== 200 || !Array.isArray(results)) return up;
  const failed = results.findIndex((r) => r && r.statusCode >= 400 && r.statusCode !== 424);
  if (failed < 0) {
    for (let i = 0; i < results.length; i += 1) {
      const body = results[i] && results[i].resourceBody;
      if (body && body.id !== undefined) writtenAt.set(`${coll}\n${body.id}`, Date.now());
    }
    return up;
  }
  if (atomic) {
    const undone = new Set();
    for (let i = failed - 1; i >= 0; i -= 1) {
      const id = batchOpId(ops[i]);
      if (id === undefined || undone.has(id) || !(results[i].statusCode < 300)) continue;
      if (ops[i].operationType === "Read") continue;
      undone.add(id);
      const prior = before.get(id);
      if (prior === undefined) {
        await forward("DELETE", `${coll}/docs/${encodeURIComponent(id)}`, h);
      } else {
        const doc = { ...prior };
        for (const k of BATCH_SYSTEM) delete doc[k];
        await forward("POST", `${coll}/docs`, { ...h, "content-type": "application/json", "x-ms-documentdb-is-upsert": "True" }, Buffer.from(JSON.stringify(doc)));
      }
    }
    for (let i = 0; i < results.length; i += 1) {
      if (i !== failed) results[i] = { statusCode: 424, requestCharge: 0 };
    }
    fixes.push(`atomic-batch-undo(${undone.size})`);
  }
  fixes.push("batch-207");
  return { status: 207, headers: up.headers, body: Buffer.from(JSON.stringify(results)) };
}

async function handle(req, res) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = Buffer.concat(chunks);
  const url = req.url;
  if (verbose && req.method === "POST" && /\/docs\/?$/.test(url)) log("<-", req.method, url, body.toString("utf8").slice(0, 400));
  const path = url.split("?")[0];
  const headers = { ...req.headers };
  const fixes = [];

  const docsMatch = path.match(/^(\/dbs\/[^/]+\/colls\/[^/]+)\/docs\/?$/);
  const collMatch = path.match(/^(\/dbs\/[^/]+\/colls\/[^/]+)\/docs(\/|$)/);
  if (collMatch) {
    const coll = collMatch[1];
    if ((req.method === "POST" || req.method === "PUT") && !header(req, "x-ms-documentdb-isquery")) {
      const doc = parseJson(body);
      if (doc && typeof doc.ttl === "number" && !ttlContainers.has(coll)) ttlContainers.set(coll, 0);
      // A batch's items (correction 8).
      if (Array.isArray(doc) && doc.some((op) => op && op.resourceBody && typeof op.resourceBody.ttl === "number")) {
        if (!ttlContainers.has(coll)) ttlContainers.set(coll, 0);
      }
    }
    await sweep(coll, req.headers);
  }
  const createColl = req.method === "POST" && path.match(/^\/dbs\/[^/]+\/colls\/?$/);
  if (createColl) {
    const c = parseJson(body);
    if (c && typeof c.defaultTtl === "number" && c.defaultTtl > 0) {
      ttlContainers.set(`${path.replace(/\/$/, "")}/${c.id}`, 0);
    }
  }
  const isQuery =
    req.method === "POST" &&
    docsMatch &&
    (String(header(req, "x-ms-documentdb-isquery")).toLowerCase() === "true" ||
      String(header(req, "content-type")).startsWith("application/query+json"));
  let scope;
  if (isQuery) {
    // Correction 3: the emulator refuses a query without
    // `x-ms-documentdb-query-enablecrosspartition` unless its text names the
    // partition key, where the service runs it over every partition.
    if (!header(req, "x-ms-documentdb-query-enablecrosspartition")) {
      headers["x-ms-documentdb-query-enablecrosspartition"] = "true";
      fixes.push("enable-cross-partition");
    }
    // Correction 4: a query sent with `x-ms-documentdb-partitionkey` is not
    // scoped to that partition; keep only that partition's documents.
    const pk = header(req, "x-ms-documentdb-partitionkey");
    if (pk) {
      const values = parseJson(Buffer.from(pk));
      if (Array.isArray(values)) scope = { coll: docsMatch[1], values };
    }
  }

  if (isQuery && String(header(req, "x-ms-cosmos-is-query-plan-request")).toLowerCase() === "true") {
    // Correction 6: the emulator has no query-plan endpoint (it runs the
    // query instead). It keeps every container in one partition key range,
    // so the plan the service would give for that one range is "run the
    // query as it is over the full range": an empty queryInfo and the range
    // ["", "FF").
    const plan = {
      partitionedQueryExecutionInfoVersion: 2,
      queryInfo: {
        distinctType: "None",
        orderBy: [],
        orderByExpressions: [],
        groupByExpressions: [],
        groupByAliases: [],
        aggregates: [],
        hasSelectValue: false,
      },
      queryRanges: [{ min: "", max: "FF", isMinInclusive: true, isMaxInclusive: false }],
    };
    const out = Buffer.from(JSON.stringify(plan));
    res.writeHead(200, { "content-type": "application/json", "content-length": String(out.length) });
    res.end(out);
    log(req.method, url, "-> 200", "[query-plan]");
    return;
  }

  const isBatch =
    req.method === "POST" &&
    docsMatch &&
    String(header(req, "x-ms-cosmos-is-batch-request")).toLowerCase() === "true";
  const batchOps = isBatch ? parseJson(body) : undefined;
  let up;
  try {
    if (Array.isArray(batchOps)) {
      up = await runBatch(req, url, docsMatch[1], headers, batchOps, fixes);
    } else {
      up = await forward(req.method, url, headers, body);
      // Correction 9: a database or container whose resource id holds a
      // `/` (the emulator's 63rd, 127th, … of each) cannot be used by
      // clients, which split resource ids on `/`; drop it and create it
      // again, which gives it the next id.
      const creates = req.method === "POST" && /^\/dbs(\/[^/]+\/colls)?\/?$/.test(path);
      for (let i = 0; creates && i < 3 && up.status === 201; i++) {
        const made = parseJson(up.body);
        if (!made || typeof made._rid !== "string" || !made._rid.includes("/")) break;
        await forward("DELETE", `${path.replace(/\/$/, "")}/${encodeURIComponent(made.id)}`, headers, Buffer.alloc(0));
        up = await forward(req.method, url, headers, body);
        fixes.push("resource-id-without-slash");
      }
    }
  } catch (e) {
    res.writeHead(502, { "content-type": "application/json" });
    res.end(JSON.stringify({ code: "BadGateway", message: `cosmos emulator: ${e.message}` }));
    return;
  }

  let status = up.status;
  if (collMatch && (req.method === "POST" || req.method === "PUT") && status >= 200 && status < 300) {
    const doc = parseJson(up.body);
    if (doc && doc.id !== undefined) writtenAt.set(`${collMatch[1]}\n${doc.id}`, Date.now());
  }
  let out = up.body;
  const json = () => parseJson(out);

  if (req.method === "GET" && path === "/" && status === 200) {
    const doc = json();
    if (doc) {
      out = Buffer.from(JSON.stringify(fixAccount(doc)));
      fixes.push("account-locations");
    }
  } else if (req.method === "GET" && /\/pkranges\/?$/.test(path) && status === 200) {
    const doc = json();
    if (doc) {
      out = Buffer.from(JSON.stringify(fixRanges(doc)));
      fixes.push("pkrange-ids");
    }
  } else if (
    req.method === "GET" &&
    /^\/dbs\/[^/]+\/colls\/[^/]+\/docs\/[^/]+$/.test(path) &&
    status === 500 &&
    /Cannot read properties of undefined/.test(out.toString("utf8"))
  ) {
    // Correction 5: reading a missing document answers 500 (a TypeError in
    // the emulator) where the service answers 404 NotFound.
    status = 404;
    out = Buffer.from(
      JSON.stringify({
        code: "NotFound",
        message: "Entity with the specified id does not exist in the system.",
      }),
    );
    fixes.push("missing-document-404");
  } else if (scope && status === 200) {
    const doc = json();
    const paths = await partitionPath(scope.coll, req.headers);
    if (doc && Array.isArray(doc.Documents) && paths.length) {
      // A projection without the partition key cannot be told apart: kept.
      doc.Documents = doc.Documents.filter((d) =>
        paths.every((p, i) => {
          const v = valueAt(d, p);
          return v === undefined || v === scope.values[i];
        }),
      );
      doc._count = doc.Documents.length;
      out = Buffer.from(JSON.stringify(doc));
      fixes.push("partition-scoped-query");
    }
  }

  const h = { ...up.headers };
  delete h["content-length"];
  delete h["transfer-encoding"];
  delete h["connection"];
  if (h["content-location"]) {
    h["content-location"] = h["content-location"].replace(
      /^https?:\/\/[^/]+/,
      `http://${listen.host}:${listen.port}`,
    );
  }
  h["content-length"] = String(out.length);
  res.writeHead(status, h);
  res.end(out);
  log(req.method, url, "->", status, fixes.length ? `[${fixes.join(", ")}]` : "", verbose && isQuery ? body.toString("utf8") : "");
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => {
    log("proxy error", e);
    if (!res.headersSent) res.writeHead(502, { "content-type": "application/json" });
    res.end(JSON.stringify({ code: "BadGateway", message: String(e && e.message) }));
  });
});
server.keepAliveTimeout = 30000;
server.listen(listen.port, listen.host, () =>
  console.log(`cosmos proxy: http://${listen.host}:${listen.port}/ -> http://${target.host}:${target.port}/`),
);
