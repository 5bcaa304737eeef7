import { readFileSync } from "node:fs";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
const docs = JSON.parse(readFileSync(process.argv[2], "utf8"));
let bad = 0;
for (const doc of docs) {
  try { new ScaledObject(doc).validate(); } catch (e) { bad++; console.log(doc.metadata.name, e.message); }
}
console.log(`${docs.length - bad} valid, ${bad} invalid`);
process.exit(bad ? 1 : 0);
