// Validates Prometheus Operator objects (ServiceMonitor, PrometheusRule, ...) against the
// JSON schemas generated from the operator's CRDs. Input: a JSON array of objects on stdin.
// kubernetes-validate has no schema for custom resources; this is their check.
import * as v1 from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';

const input = await new Promise((resolve) => {
  let s = '';
  process.stdin.on('data', (d) => (s += d));
  process.stdin.on('end', () => resolve(s));
});
let failed = 0;
for (const obj of JSON.parse(input)) {
  const name = `${obj.kind}/${obj.metadata?.name}`;
  const Model = obj.apiVersion === 'monitoring.coreos.com/v1' ? v1[obj.kind] : undefined;
  if (!Model) {
    console.error(`ERROR ${name}: no schema for ${obj.apiVersion} ${obj.kind}`);
    failed++;
    continue;
  }
  try {
    new Model(obj).validate();
    console.log(`ok ${name} (${obj.apiVersion})`);
  } catch (e) {
    console.error(`ERROR ${name}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
