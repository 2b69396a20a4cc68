import pg from "pg";
import { describe, expect, it } from "vitest";
import { errorHandling } from "./sink.js";

const dbError = (code: string) => Object.assign(new pg.DatabaseError("x", 0, "error"), { code });

describe("errorHandling: what the consumer does about an error, by SQLSTATE class", () => {
  it.each([
    ["22021", "isolate"], // character_not_in_repertoire
    ["22P02", "isolate"], // invalid_text_representation
    ["23502", "isolate"], // not_null_violation
    ["54001", "isolate"], // statement_too_complex (stack depth)
    ["08006", "retry"], // connection_failure
    ["40001", "retry"], // serialization_failure
    ["40P01", "retry"], // deadlock_detected
    ["53300", "retry"], // too_many_connections
    ["57P01", "retry"], // admin_shutdown
    ["58030", "retry"], // io_error
    ["23505", "retry"], // unique_violation: a concurrent key, retried
    ["23514", "retry"], // no partition for the row yet: made by the retry
    ["55P03", "retry"], // lock_not_available
    ["42501", "stall"], // insufficient_privilege
    ["42P01", "stall"], // undefined_table
    ["42703", "stall"], // undefined_column
    ["XX000", "stall"], // internal_error
  ])("%s → %s", (code, want) => {
    expect(errorHandling(dbError(code))).toBe(want);
  });

  it("retries what PostgreSQL did not answer (the network, the pool), whatever its code", () => {
    expect(errorHandling(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }))).toBe("retry");
    expect(errorHandling(Object.assign(new Error("write EPIPE"), { code: "EPIPE" }))).toBe("retry");
    expect(errorHandling(new Error("timeout exceeded when trying to connect"))).toBe("retry");
  });
});
