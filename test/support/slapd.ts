/**
 * OpenLDAP's slapd as a real directory: a private slapd.conf and mdb database in a temporary
 * directory, loaded offline with slapadd, plain LDAP (with STARTTLS) and LDAPS on free loopback
 * ports, the test certificate as its TLS identity, stopped by its PID. Its stats log (`-d 256`)
 * is kept, so a test can see which binds reached the server.
 *
 * The ACLs let anyone bind (`allow bind_anon_dn` too: an "unauthenticated bind", a DN with an
 * empty password, succeeds here as it does on some servers) and let the service account
 * `cn=smtp,dc=example,dc=com` (password `service-pw`) and anonymous clients search the people.
 *
 * @example
 * const slapd = await startSlapd([{ uid: "alice", password: "pw", mail: ["alice@example.com"] }])
 * try { ... } finally { await slapd.stop() }
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { testCertificate } from "./certs.ts"
import { spawnLogged, waitForPort } from "./process.ts"
import { freePort } from "./runtimes.ts"
import { installed } from "./tools.ts"

export interface Person {
  readonly uid: string
  readonly password: string
  readonly mail: ReadonlyArray<string>
  readonly mailAlternateAddress?: ReadonlyArray<string>
}

export interface Slapd {
  /** Plain LDAP (STARTTLS offered). */
  readonly port: number
  /** LDAP over TLS from the first byte. */
  readonly ldapsPort: number
  readonly base: string
  readonly serviceDn: string
  readonly servicePassword: string
  /** The CA that signs the server's certificate (the self-signed test certificate). */
  readonly caFile: string
  /** The `BIND dn="..." mech=SIMPLE ... ssf=N` lines of the binds that succeeded (ssf 0: not encrypted). */
  readonly boundWith: () => ReadonlyArray<string>
  /** The `BIND dn="..." method=128` lines of the stats log so far: one per simple bind received. */
  readonly binds: () => ReadonlyArray<string>
  readonly stop: () => Promise<void>
}

export const slapdAvailable = (): boolean => installed("/usr/sbin/slapd") && installed("/usr/sbin/slapadd")

// mailAlternateAddress is no standard attribute (qmail and Sun's schemas have it); declared here
// under an example OID arc, with a mail-like syntax.
const mailAltSchema = `
attributetype ( 1.3.6.1.4.1.99999.1.1 NAME 'mailAlternateAddress'
  EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} )
objectclass ( 1.3.6.1.4.1.99999.2.1 NAME 'mailAlternate' SUP top AUXILIARY MAY ( mailAlternateAddress ) )
`

export interface SlapdOptions {
  /** Seconds after which slapd closes an idle connection (none by default). */
  readonly idleTimeout?: number
}

export const startSlapd = async (people: ReadonlyArray<Person>, options: SlapdOptions = {}): Promise<Slapd> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-slapd-"))
  const db = path.join(dir, "db")
  fs.mkdirSync(db)
  fs.writeFileSync(path.join(dir, "mailalt.schema"), mailAltSchema)
  const { cert, key } = testCertificate()
  const base = "dc=example,dc=com"
  const serviceDn = `cn=smtp,${base}`
  const servicePassword = "service-pw"
  const conf = path.join(dir, "slapd.conf")
  fs.writeFileSync(conf, `
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include ${path.join(dir, "mailalt.schema")}
pidfile ${path.join(dir, "slapd.pid")}
argsfile ${path.join(dir, "slapd.args")}
modulepath /usr/lib/ldap
moduleload back_mdb
allow bind_anon_dn
${options.idleTimeout === undefined ? "" : `idletimeout ${options.idleTimeout}`}
TLSCertificateFile ${cert}
TLSCertificateKeyFile ${key}
database mdb
maxsize 10485760
suffix "${base}"
rootdn "cn=admin,${base}"
rootpw admin-pw
directory ${db}
access to attrs=userPassword by anonymous auth by self read by * none
access to * by * read
`)
  const entry = (dn: string, lines: ReadonlyArray<string>) => `dn: ${dn}\n${lines.join("\n")}\n\n`
  const ldif = [
    entry(base, ["objectClass: dcObject", "objectClass: organization", "dc: example", "o: Example"]),
    entry(`ou=people,${base}`, ["objectClass: organizationalUnit", "ou: people"]),
    entry(serviceDn, ["objectClass: person", "objectClass: simpleSecurityObject", "cn: smtp", "sn: smtp", `userPassword: ${servicePassword}`]),
    ...people.map((p) =>
      entry(`uid=${p.uid},ou=people,${base}`, [
        "objectClass: inetOrgPerson",
        "objectClass: mailAlternate",
        `uid: ${p.uid}`,
        `cn: ${p.uid}`,
        `sn: ${p.uid}`,
        `userPassword: ${p.password}`,
        ...p.mail.map((m) => `mail: ${m}`),
        ...(p.mailAlternateAddress ?? []).map((m) => `mailAlternateAddress: ${m}`)
      ])
    )
  ].join("")
  fs.writeFileSync(path.join(dir, "data.ldif"), ldif)
  execFileSync("/usr/sbin/slapadd", ["-f", conf, "-l", path.join(dir, "data.ldif")], { stdio: ["ignore", "ignore", "pipe"], timeout: 20_000 })
  // A free port can be taken by another test between choosing it and slapd binding it: then
  // slapd exits with "Address already in use", and it is started again on new ports.
  const start = async (attempt: number): Promise<{ port: number; ldapsPort: number; child: ReturnType<typeof spawnLogged> }> => {
    const port = await freePort()
    const ldapsPort = await freePort()
    // -d 256: the stats log (connections, operations) on stderr, in the foreground.
    const child = spawnLogged("/usr/sbin/slapd", ["-f", conf, "-h", `ldap://127.0.0.1:${port}/ ldaps://127.0.0.1:${ldapsPort}/`, "-d", "256"])
    try {
      await waitForPort(port, "slapd", { exited: child.gone, log: child.output, attempts: 200 })
      return { port, ldapsPort, child }
    } catch (error) {
      await child.stop()
      if (attempt < 3 && child.output().includes("Address already in use")) return start(attempt + 1)
      fs.rmSync(dir, { recursive: true, force: true })
      throw error
    }
  }
  const { port, ldapsPort, child } = await start(1)
  const stop = async () => {
    await child.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  return {
    port,
    ldapsPort,
    base,
    serviceDn,
    servicePassword,
    caFile: cert,
    boundWith: () => child.output().split("\n").filter((l) => / BIND dn=".*" mech=SIMPLE /.test(l)),
    binds: () => child.output().split("\n").filter((l) => / BIND dn=".*" method=128/.test(l)),
    stop
  }
}
