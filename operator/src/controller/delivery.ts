import { errorText } from "../../../workloads/common/src/connections.js";
import type { LogPipeline } from "../api/logpipeline.js";
import { pipelineNames } from "../builders/names.js";
import { committedLag, deliveryStatus, readLedger } from "../divergence/delivery.js";
import type { KafkaConnection, TopicAdmin } from "../kafka/topic-admin.js";
import type { SecretReads } from "./secret-reads.js";
import { secretUsable, unlabelledSecret } from "./policy.js";
import type { ControllerDeps, DeliveryRead } from "./deps.js";
import { postgresConnectionAs } from "./postgres-roles.js";

/**
 * A key of a Secret in the pipeline's namespace, decoded, when the pipeline may use the
 * Secret (policy.ts); an error names the Secret and key, never the value.
 */
export async function secretValue(
  secrets: Pick<SecretReads, "read">,
  p: LogPipeline,
  name: string,
  key: string,
): Promise<string> {
  const s = await secrets.read(p.metadata.namespace, name);
  if (!s.exists) throw new Error(`Secret ${name} not found`);
  if (!secretUsable(s.labels, p)) throw new Error(unlabelledSecret(name));
  const v = s.data[key];
  if (v === undefined) throw new Error(`Secret ${name} has no key ${key}`);
  return Buffer.from(v, "base64").toString("utf8");
}

/**
 * Reads where Kafka and PostgreSQL stand: last stable offsets through the Admin API, the
 * consumer's stored positions from the ledger, and the committed records in each small gap.
 * A failed read keeps the last figures (their asOf tells their age) and says why.
 */
export async function readDelivery(
  p: LogPipeline,
  deps: ControllerDeps,
  admin: TopicAdmin | undefined,
  kafka: KafkaConnection | undefined,
): Promise<DeliveryRead> {
  const at = deps.now().getTime();
  const last = deps.deliveryReads.get(`${p.metadata.namespace}/${p.metadata.name}`);
  const prev = last?.delivery;
  const failures = (last?.failures ?? 0) + 1;
  const keep = prev
    ? { delivery: prev, ...(last.readAt !== undefined && { readAt: last.readAt }), failures }
    : { failures };
  if (!admin || !kafka) return { at, ...keep };
  const topic = pipelineNames(p).topic;
  let ledger;
  try {
    ledger = await readLedger(
      await postgresConnectionAs(p, deps, "reader"),
      p.spec.postgres.schema,
      p.spec.postgres.table,
      topic,
    );
  } catch (e) {
    deps.log.debug({ pipeline: p.metadata.name, err: errorText(e) }, "ledger not readable");
    return { at, ...keep, postgresError: errorText(e) };
  }
  try {
    const lso = await admin.lastStableOffsets(topic);
    // The figures describe this moment (processed + lag is what was committed by then), not
    // the end of the read: counting the lag may take a while.
    const readAt = deps.now();
    const stored = new Map(ledger.map((r) => [r.partition, r.nextOffset]));
    const committed = await committedLag(kafka, topic, lso, stored);
    return { at, delivery: deliveryStatus(lso, ledger, committed, readAt), readAt: readAt.getTime() };
  } catch (e) {
    deps.log.debug({ pipeline: p.metadata.name, err: errorText(e) }, "Kafka offsets not readable");
    return { at, ...keep };
  }
}
