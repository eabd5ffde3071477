#!/usr/bin/env node
// Submit one alert to the LLM Incident Manager over gRPC and read back the incident it
// opened or joined: `node client.js [host:port]` (default localhost:9000).
//
// The .proto files are loaded at run time from the repository. They import each other as
// "protos/…", so the include root is the repository root (two directories up), not protos/.
// Exits 0 on success; on a gRPC error prints "error: <STATUS>: <details>" and exits 1.
'use strict';

const path = require('node:path');
const { promisify } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const REPOSITORY = path.resolve(__dirname, '..', '..');
const TIMEOUT_MS = 10000;

const definition = protoLoader.loadSync(['protos/alerts.proto', 'protos/incidents.proto'], {
  includeDirs: [REPOSITORY],
  keepCase: true, // field names as in the .proto files: alert_id, incident_id, …
  enums: String, // enums as their names: "P1", "DETECTED", …
  defaults: true,
});
const { alerts, incidents } = grpc.loadPackageDefinition(definition);

/** Call a unary method as a promise, with a deadline. */
function call(client, method, request) {
  const deadline = new Date(Date.now() + TIMEOUT_MS);
  return promisify(client[method].bind(client))(request, { deadline });
}

async function main(address) {
  const credentials = grpc.credentials.createInsecure();
  const intake = new alerts.AlertIngestion(address, credentials);
  const incidentService = new incidents.IncidentService(address, credentials);
  try {
    const ack = await call(intake, 'SubmitAlert', {
      alert_id: `node-example-${Date.now()}`,
      source: 'node-example',
      title: 'High Latency',
      description: 'p99 above 2 s for 5 minutes',
      severity: 'P1',
      type: 'PERFORMANCE',
      labels: { team: 'sre' },
    });
    console.log(`alert ${ack.alert_id}: ${ack.status} (incident ${ack.incident_id}, new: ${ack.new_incident})`);
    const incident = await call(incidentService, 'GetIncident', { id: ack.incident_id });
    console.log(`incident ${incident.id}: ${incident.state} ${incident.severity} ${incident.type} ` +
                `"${incident.title}" from ${incident.source}, ${incident.alert_count} alert(s)`);
  } finally {
    intake.close();
    incidentService.close();
  }
}

main(process.argv[2] || 'localhost:9000').catch((error) => {
  const status = error.code === undefined ? 'ERROR' : grpc.status[error.code];
  console.error(`error: ${status}: ${error.details || error.message}`);
  process.exit(1);
});
