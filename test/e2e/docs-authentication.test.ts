/**
 * docs/authentication.md's three examples ("Postfix + Dovecot shop", "LDAP / Active Directory",
 * "apps with OAuth tokens"): each is a file in docs/examples/, shown verbatim in the page, and
 * loaded here as `serve --config` loads it (imported by the runtime, checked by the schema),
 * giving the backends, mechanisms and cache the page promises.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import * as Backends from "../../src/auth/Backends.ts"
import * as Load from "../../src/config/Load.ts"
import { projectRoot } from "../support/runtimes.ts"

const page = fs.readFileSync(path.join(projectRoot, "docs", "authentication.md"), "utf8")
const blocks = [...page.matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((m) => m[1]!)

describe("docs/authentication.md's examples", () => {
  it.each([
    [
      "Postfix + Dovecot shop",
      "auth-dovecot.config.ts",
      "backends dovecot unix:/var/spool/postfix/private/auth; mechanisms PLAIN LOGIN Dovecot's; cache ttl 5m, negative 30s"
    ],
    [
      "LDAP / Active Directory",
      "auth-ldap.config.ts",
      "backends htpasswd /etc/smtp-bridge/service-accounts.htpasswd -> ldap ldaps://dc1.corp.example.com base OU=Staff,DC=corp,DC=example,DC=com; mechanisms PLAIN LOGIN; cache ttl 2m, negative 10s"
    ],
    [
      "Apps with OAuth tokens",
      "auth-oauth.config.ts",
      "backends oauth https://login.example.com/**** issuer https://login.example.com/ -> http https://accounts.internal.example.com/****; mechanisms PLAIN LOGIN OAUTHBEARER XOAUTH2; cache off"
    ]
  ])("%s: docs/examples/%s is shown verbatim and loads with the backends it describes", async (heading, file, described) => {
    const text = fs.readFileSync(path.join(projectRoot, "docs", "examples", file), "utf8")
    expect(page).toContain(`### ${heading}\n\n\`\`\`ts\n${text}\`\`\``)
    expect(blocks).toContain(text)
    const config = await Effect.runPromise(Load.load({ file: path.join(projectRoot, "docs", "examples", file), flags: {} }))
    expect(Backends.describe(config)).toBe(described)
  })

  it("completes its LDAP URL example with the file entry's bind options, as the page says", async () => {
    const config = await Effect.runPromise(Load.load({
      file: path.join(projectRoot, "docs", "examples", "auth-ldap.config.ts"),
      flags: { auth: ["ldaps://ldap.example.com/ou=people,dc=example,dc=com?uid"] }
    }))
    expect(config.auth).toEqual([{
      type: "ldap",
      options: expect.objectContaining({
        url: "ldaps://ldap.example.com",
        base: "ou=people,dc=example,dc=com",
        // The file's own filter wins over the URL's attribute; its bind stays.
        filter: "(&(objectClass=user)(|(sAMAccountName=%s)(userPrincipalName=%s)))",
        bindDn: "CN=smtp-bridge,OU=Services,DC=corp,DC=example,DC=com",
        bindPasswordFile: "/run/secrets/ldap-bind-password"
      })
    }])
  })
})
