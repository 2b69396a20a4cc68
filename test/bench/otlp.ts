/**
 * The `make bench` phase for OTLP ingest: what decoding and mapping OTLP/HTTP protobuf costs
 * the gateway, against its native batch API in the same run. Batches of 100 and 1,000 records,
 * each run alone against the gateway (no consumer competing for the two cores); every record
 * is distinct (a counter written into each record per request), and afterwards a consumer
 * stores them all and the OTLP records stored are checked against those answered 200.
 */
import { SeverityNumber } from "@opentelemetry/api";
import { ProtobufLogsSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import type autocannon from "autocannon";
import { load } from "./load.js";

const PLACEHOLDER = "#000000000000";
/** The services the OTLP load comes from: as many as the native load's sources. */
const SERVICES = 16;
/** Native and OTLP phases alternate this many times per batch size. */
const ROUNDS = 3;
/** service.name of the OTLP load's records (and so their source): this, then 0–15. */
export const OTLP_SOURCE_PREFIX = "bench-otlp-";

/**
 * An ExportLogsServiceRequest of `n` records of about 300 bytes (like the native bench's
 * events), made by the SDK's own serializer, from one service; each record's body holds a
 * fixed-width placeholder that is overwritten per request, so no two records of the run are
 * alike.
 */
export async function otlpTemplate(n: number, service: string): Promise<{ body: Buffer; offsets: number[] }> {
  const exporter = new InMemoryLogRecordExporter();
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ "service.name": service, "host.name": "bench" }),
    processors: [new SimpleLogRecordProcessor({ exporter })],
  });
  const logger = provider.getLogger("bench");
  for (let i = 0; i < n; i++)
    logger.emit({
      severityNumber: i % 10 === 0 ? SeverityNumber.ERROR : SeverityNumber.INFO,
      body: `benchmark event ${PLACEHOLDER} `.padEnd(180, "x"),
      attributes: { region: "eu-1", pod: `pod-${i % 8}` },
    });
  await provider.forceFlush();
  const body = Buffer.from(ProtobufLogsSerializer.serializeRequest(exporter.getFinishedLogRecords()) ?? []);
  const offsets: number[] = [];
  for (let at = body.indexOf(PLACEHOLDER); at >= 0; at = body.indexOf(PLACEHOLDER, at + 1)) offsets.push(at);
  if (offsets.length !== n) throw new Error(`otlp template: ${offsets.length} placeholders, want ${n}`);
  return { body, offsets };
}

const answered = (r: autocannon.Result, status: string) =>
  (r as unknown as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats?.[status]
    ?.count ?? 0;

export async function otlpPhase(o: {
  port: number;
  key: string;
  nativeEvent: (i: number) => object;
  seconds: number;
  connections: number;
  step: (s: string) => void;
}): Promise<{ figures: Record<string, number>; accepted: number; nativeAccepted: number }> {
  const figures: Record<string, number> = {};
  let accepted = 0;
  let nativeAccepted = 0;
  let serial = 0;
  for (const n of [100, 1000]) {
    const native = JSON.stringify(Array.from({ length: n }, (_, i) => o.nativeEvent(i)));
    // As many services as the native load has sources (16): the gateway partitions by source
    // (service.name), so one service alone would put every record on one partition.
    const templates = await Promise.all(
      Array.from({ length: SERVICES }, (_, k) => otlpTemplate(n, `${OTLP_SOURCE_PREFIX}${k}`)),
    );
    // Native and OTLP alternate, ROUNDS times each: the machine's drift over the phase touches
    // both alike (one run of each, back to back, differed by a third between runs).
    const seconds = Math.max(2, Math.round(o.seconds / 2));
    let natEvents = 0;
    let otlpEvents = 0;
    let non200 = 0;
    const roundRatios: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      o.step(
        `otlp: native batches of ${n} events, ${seconds}s (round ${round} of ${ROUNDS}), consumer stopped`,
      );
      const nat = await load({
        url: `http://127.0.0.1:${o.port}/api/logs/batch`,
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": o.key },
        body: native,
        connections: o.connections,
        duration: seconds,
      });
      o.step(
        `otlp: OTLP/HTTP protobuf batches of ${n} records, ${seconds}s (round ${round} of ${ROUNDS}), consumer stopped`,
      );
      const otlp = await load({
        url: `http://127.0.0.1:${o.port}/v1/logs`,
        connections: o.connections,
        duration: seconds,
        requests: [
          {
            method: "POST",
            headers: { "content-type": "application/x-protobuf", authorization: `Bearer ${o.key}` },
            setupRequest: (req) => {
              // A fresh copy per request: autocannon may still be writing the previous one.
              const { body, offsets } = templates[serial % SERVICES] as { body: Buffer; offsets: number[] };
              const b = Buffer.from(body);
              const tag = `#${String(++serial).padStart(12, "0")}`;
              for (const at of offsets) b.write(tag, at, "latin1");
              return { ...req, body: b };
            },
          },
        ],
      });
      const natRound = answered(nat, "202") * n;
      const otlpRound = answered(otlp, "200") * n;
      natEvents += natRound;
      otlpEvents += otlpRound;
      non200 += otlp.requests.total - answered(otlp, "200");
      roundRatios.push(otlpRound / Math.max(1, natRound));
    }
    accepted += otlpEvents;
    nativeAccepted += natEvents;
    const total = seconds * ROUNDS;
    figures[`otlp_native_batch_${n}_events_per_s`] = Math.round(natEvents / total);
    figures[`otlp_batch_${n}_events_per_s`] = Math.round(otlpEvents / total);
    figures[`otlp_batch_${n}_ratio_vs_native`] = Number((otlpEvents / Math.max(1, natEvents)).toFixed(3));
    figures[`otlp_batch_${n}_ratio_min`] = Number(Math.min(...roundRatios).toFixed(3));
    figures[`otlp_batch_${n}_ratio_max`] = Number(Math.max(...roundRatios).toFixed(3));
    figures[`otlp_batch_${n}_non_200`] = non200;
  }
  return { figures, accepted, nativeAccepted };
}
