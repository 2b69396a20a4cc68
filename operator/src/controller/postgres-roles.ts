import { randomBytes } from "node:crypto";
import type { LogPipeline } from "../api/logpipeline.js";
import { MANAGED_ROLE_PREFIX, postgresConnection } from "../builders/data-services.js";
import { pipelineNames } from "../builders/names.js";
import { type PostgresConnection, withClient } from "../divergence/delivery.js";
import { ensureRoles, ROLE_KINDS, type RoleKind, rotateLogin } from "../postgres/roles.js";
import { hashOf } from "./applied.js";
import { secretValue } from "./delivery.js";
import type { ControllerDeps } from "./deps.js";

/** A LogPipeline annotation: a new value rotates the managed server's role passwords once. */
export const ANNOTATION_ROTATE_POSTGRES = "logpipeline.io/rotate-postgres-credentials";
/** On each role Secret: the rotation request it answers. */
export const ANNOTATION_ROTATED_FOR = "logpipeline.io/rotated-for";

/** The operator's connection to the pipeline's PostgreSQL as one role (credentials from the role's Secret). */
export async function postgresConnectionAs(
  p: LogPipeline,
  deps: Pick<ControllerDeps, "secrets">,
  role: "superuser" | "reader",
): Promise<PostgresConnection> {
  const w = postgresConnection(p, role);
  const read = (name: string, key: string) => secretValue(deps.secrets, p, name, key);
  return {
    host: w.host,
    port: w.port,
    database: w.database,
    sslMode: w.sslMode,
    user: await read(w.userFromSecret.secretName, w.userFromSecret.key),
    password: await read(w.password.secretName, "password"),
    ...(w.ca ? { caPem: await read(w.ca.secretName, w.ca.keys[0] ?? "ca.crt") } : {}),
  };
}

/**
 * A managed server's roles (postgres/roles.ts), made or brought up to date when what they
 * depend on changed (the role Secrets, the schema) or a rotation is asked for; otherwise
 * nothing is sent. `done` remembers, per pipeline, what was last made.
 */
export async function ensureManagedRoles(
  key: string,
  p: LogPipeline,
  deps: Pick<ControllerDeps, "secrets" | "kube" | "log">,
  done: Map<string, string>,
): Promise<void> {
  if (p.spec.postgres.mode !== "managed") return;
  const names = pipelineNames(p);
  const ns = p.metadata.namespace;
  const rotation = p.metadata.annotations?.[ANNOTATION_ROTATE_POSTGRES];
  const secrets = await Promise.all(ROLE_KINDS.map((k) => deps.secrets.read(ns, names.postgresRoles[k])));
  if (secrets.some((s) => !s.exists)) return; // made by the next reconcile (createOnce)
  const state = hashOf({ schema: p.spec.postgres.schema, secrets: secrets.map((s) => s.hash), rotation });
  if (done.get(key) === state) return;
  const superuser = await postgresConnectionAs(p, deps, "superuser");
  await withClient(superuser, async (client) => {
    const active = {} as Record<RoleKind, { username: string; password: string }>;
    for (const kind of ROLE_KINDS)
      active[kind] = {
        username: await secretValue(deps.secrets, p, names.postgresRoles[kind], "username"),
        password: await secretValue(deps.secrets, p, names.postgresRoles[kind], "password"),
      };
    await ensureRoles(client, { prefix: MANAGED_ROLE_PREFIX, schema: p.spec.postgres.schema, active });
    if (!rotation) return;
    for (const [i, kind] of ROLE_KINDS.entries()) {
      const answered = secrets[i]?.annotations?.[ANNOTATION_ROTATED_FOR];
      if (answered === rotation) continue;
      // The new password goes on the login the Secret does not name; then the Secret names
      // it. Pods still on the old Secret keep working until the rollout replaces them. A
      // crash between the two leaves the Secret as it was (the next pass makes another).
      const password = randomBytes(24).toString("base64url");
      const next = await rotateLogin(client, {
        prefix: MANAGED_ROLE_PREFIX,
        kind,
        current: active[kind].username,
        password,
      });
      await deps.kube.mergePatch("v1", "Secret", ns, names.postgresRoles[kind], {
        metadata: { annotations: { [ANNOTATION_ROTATED_FOR]: rotation } },
        data: {
          username: Buffer.from(next).toString("base64"),
          password: Buffer.from(password).toString("base64"),
        },
      });
      deps.secrets.invalidate(ns, names.postgresRoles[kind]);
      deps.log.info({ pipeline: key, role: kind, login: next }, "PostgreSQL password rotated");
    }
  });
  // After a rotation the Secrets changed: the next pass sees new hashes and confirms.
  if (!rotation || secrets.every((s) => s.annotations?.[ANNOTATION_ROTATED_FOR] === rotation))
    done.set(key, state);
}
