/**
 * dkimpy (Debian's python3-dkim), an independent DKIM and ARC implementation, as the other side
 * of cross-implementation tests: it signs messages the bridge verifies and verifies what the
 * bridge signs, with its DNS answered from the records the test publishes (no real DNS).
 */
import * as Crypto from "node:crypto"
import { run } from "../../support/exec.ts"

const SCRIPT = `
import sys, json, base64, dkim
job = json.loads(sys.stdin.read())
records = job.get("records", {})
def dnsfunc(name, timeout=5):
    key = name.decode() if isinstance(name, bytes) else name
    value = records.get(key.rstrip("."))
    return value.encode() if value is not None else None
msg = base64.b64decode(job["message"])
if job["op"] == "verify":
    d = dkim.DKIM(msg)
    count = sum(1 for line in msg.split(b"\\r\\n\\r\\n")[0].split(b"\\r\\n") if line.lower().startswith(b"dkim-signature:"))
    print(json.dumps([bool(d.verify(idx=i, dnsfunc=dnsfunc)) for i in range(count)]))
elif job["op"] == "arc":
    cv, results, reason = dkim.arc_verify(msg, dnsfunc=dnsfunc)
    print(json.dumps({"cv": cv.decode(), "reason": reason}))
else:
    sig = dkim.sign(msg, job["selector"].encode(), job["domain"].encode(), job["key"].encode(),
        canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=job["algorithm"].encode(),
        include_headers=[b"from", b"to", b"subject", b"date"])
    sys.stdout.write(sig.decode())
`

const python = async (job: Record<string, unknown>): Promise<string> => {
  const r = await run("/usr/bin/python3", ["-c", SCRIPT], { input: JSON.stringify(job), timeoutMs: 20_000 })
  if (r.code !== 0) throw new Error(`dkimpy failed (${r.code}): ${r.stderr}`)
  return r.stdout
}

/** Whether each DKIM-Signature (top first) verifies. */
export const verify = async (message: Uint8Array, records: Record<string, string>): Promise<ReadonlyArray<boolean>> =>
  JSON.parse(await python({ op: "verify", message: Buffer.from(message).toString("base64"), records }))

/** The ARC chain validation status (`pass`, `fail`, `none`) and dkimpy's reason. */
export const arcVerify = async (message: Uint8Array, records: Record<string, string>): Promise<{ cv: string; reason: string }> =>
  JSON.parse(await python({ op: "arc", message: Buffer.from(message).toString("base64"), records }))

/** dkimpy's key formats: PKCS#1 PEM for RSA, the base64 32-byte seed for Ed25519. */
const dkimpyKey = (pem: string): string => {
  const key = Crypto.createPrivateKey(pem)
  if (key.asymmetricKeyType === "ed25519") return key.export({ type: "pkcs8", format: "der" }).subarray(-32).toString("base64")
  return String(key.export({ type: "pkcs1", format: "pem" }))
}

/** A DKIM-Signature field (with its CRLF) from dkimpy, relaxed/relaxed over From, To, Subject, Date. */
export const sign = (message: string, options: { domain: string; selector: string; privateKeyPem: string; algorithm: "rsa-sha256" | "ed25519-sha256" }) =>
  python({
    op: "sign",
    message: Buffer.from(message).toString("base64"),
    domain: options.domain,
    selector: options.selector,
    key: dkimpyKey(options.privateKeyPem),
    algorithm: options.algorithm
  })
