// node validate.mjs OUTDIR FILE.yaml...: parses each manifest with a real YAML parser (errors
// and warnings are failures; aliases are resolved), validates every document against the
// Kubernetes API schema of its apiVersion and kind (kubernetes-models' generated validators:
// wrong types, bad enum values, missing required fields), and, since those schemas allow
// unknown fields (the API server would drop them silently), refuses any key that no
// Kubernetes type has (a misspelt "imagePullPolicyy"), outside the free-form maps (labels,
// annotations, data, ...). Writes the documents as JSON to OUTDIR/<file>.json (an array) for
// the test's own checks. Exit 1 on any failure, with one line per problem.
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

// Every property name the generated validators know (they name it in their error paths).
const here = dirname(fileURLToPath(import.meta.url));
const vocab = new Set();
for (const dir of ["kubernetes-models/_schemas", "@kubernetes-models/apimachinery/_schemas"]) {
  const full = join(here, "node_modules", dir);
  for (const f of readdirSync(full).filter((n) => n.endsWith(".js")))
    for (const m of readFileSync(join(full, f), "utf8").matchAll(/instancePath\+"\/([A-Za-z0-9$._-]+)"/g))
      vocab.add(m[1]);
}
const freeForm = new Set(["labels", "annotations", "data", "stringData", "binaryData", "matchLabels", "nodeSelector", "limits", "requests"]);
function unknownKeys(v, path, out) {
  if (Array.isArray(v)) v.forEach((x, i) => unknownKeys(x, `${path}/${i}`, out));
  else if (v !== null && typeof v === "object")
    for (const [k, x] of Object.entries(v)) {
      if (!vocab.has(k)) out.push(`${path}/${k}`);
      if (!freeForm.has(k)) unknownKeys(x, `${path}/${k}`, out);
    }
}

const [outdir, ...files] = process.argv.slice(2);
let failed = 0;
const fail = (msg) => {
  failed++;
  console.error(`validate: ${msg}`);
};

for (const file of files) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"), { prettyErrors: true, uniqueKeys: true });
  const out = [];
  for (const [i, doc] of docs.entries()) {
    for (const e of [...doc.errors, ...doc.warnings]) fail(`${file}: document ${i}: ${e.message}`);
    const obj = doc.toJS({ maxAliasCount: 100 });
    if (obj === null || obj === undefined) continue;
    out.push(obj);
    const { apiVersion, kind } = obj;
    if (typeof apiVersion !== "string" || typeof kind !== "string") {
      fail(`${file}: document ${i}: no apiVersion or kind`);
      continue;
    }
    let Model;
    try {
      Model = (await import(`kubernetes-models/${apiVersion}/${kind}`))[kind];
    } catch {
      fail(`${file}: document ${i}: ${apiVersion} ${kind} is not a Kubernetes API type`);
      continue;
    }
    const unknown = [];
    unknownKeys(obj, "", unknown);
    for (const u of unknown) fail(`${file}: ${kind} ${obj.metadata?.name}: ${u}: no Kubernetes type has this field`);
    try {
      new Model(obj).validate();
    } catch (e) {
      const details = (e.errors || []).map((x) => `${x.instancePath || "/"} ${x.message}${x.params && x.params.additionalProperty ? ` (${x.params.additionalProperty})` : ""}`);
      fail(`${file}: ${kind} ${obj.metadata?.name}: ${details.length ? details.join("; ") : e.message}`);
    }
  }
  writeFileSync(`${outdir}/${basename(file)}.json`, JSON.stringify(out));
}
process.exit(failed ? 1 : 0);
