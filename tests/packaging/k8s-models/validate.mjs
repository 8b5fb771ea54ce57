// Validate Kubernetes objects against the schemas of kubernetes-models and its
// @kubernetes-models packages (Gateway API, cert-manager).  Reads a JSON array of
// {"where": "...", "object": {...}} on stdin; prints one line per object,
// "ok WHERE" or "invalid WHERE: reason", and exits 1 when any is invalid or of a
// kind no package here knows.  Used by tests/packaging/test_packaging.py.
import { readFileSync } from "node:fs";

// API group -> the package whose models cover it ("" is the core group).
const PACKAGES = {
  "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
  "cert-manager.io": "@kubernetes-models/cert-manager",
  "trust.cert-manager.io": "@kubernetes-models/cert-manager",
};

async function modelFor(apiVersion, kind) {
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const pkg = PACKAGES[group] ?? (group === "" || group.endsWith(".k8s.io") || !group.includes(".")
    ? "kubernetes-models" : null);
  if (pkg === null) throw new Error(`no model package for API group "${group}"`);
  const mod = await import(`${pkg}/${apiVersion}`);
  if (typeof mod[kind] !== "function") throw new Error(`${pkg} has no ${apiVersion} ${kind}`);
  return mod[kind];
}

const items = JSON.parse(readFileSync(0, "utf8"));
let bad = 0;
for (const { where, object } of items) {
  try {
    const Model = await modelFor(object.apiVersion ?? "", object.kind ?? "");
    new Model(object).validate();
    console.log(`ok ${where}`);
  } catch (e) {
    bad++;
    console.log(`invalid ${where}: ${String(e.message ?? e).replace(/\s+/g, " ")}`);
  }
}
process.exit(bad ? 1 : 0);
