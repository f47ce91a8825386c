/**
 * docs/deploy's Grafana dashboard and Prometheus alert rules against a live /metrics: a bridge
 * with a spool, an upstream that is down, AUTH and a rate limit serves one failed AUTH, one
 * spooled message whose delivery fails, and one message refused by the rate limit; then every
 * query of the dashboard and of the rules must name only metrics that /metrics lists, and only
 * labels those metrics carry (or the `instance` and `job` labels Prometheus adds when it scrapes).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rateLimit } from "../../plugins/rate-limit/index.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { until } from "../support/eventually.ts"
import { freePort, projectRoot } from "../support/runtimes.ts"
import { login, mail, open, passwordAuth, plain } from "./rate-limit/transcript.ts"

const dashboard = JSON.parse(fs.readFileSync(path.join(projectRoot, "docs", "deploy", "grafana-dashboard.json"), "utf8")) as {
  panels: ReadonlyArray<{ title: string; targets: ReadonlyArray<{ expr: string }> }>
  templating: { list: ReadonlyArray<{ name: string; definition?: string }> }
}
const rules = fs.readFileSync(path.join(projectRoot, "docs", "deploy", "prometheus-alerts.yml"), "utf8")

/** Every query, named by where it is. */
const queries: ReadonlyArray<readonly [string, string]> = [
  ...dashboard.panels.flatMap((p) => p.targets.map((t) => [`panel "${p.title}"`, t.expr] as const)),
  ...dashboard.templating.list.flatMap((v) => v.definition === undefined ? [] : [[`variable $${v.name}`, v.definition] as const]),
  ...[...rules.matchAll(/^\s*- alert: (\S+)\n\s*expr: (.+)$/gm)].map((m) => [`alert ${m[1]}`, m[2]!] as const)
]

/** Labels Prometheus attaches to every scraped series; /metrics does not carry them. */
const targetLabels = new Set(["instance", "job"])

/** Metric name -> label name -> values seen, from Prometheus text. */
const seriesOf = (text: string): ReadonlyMap<string, ReadonlyMap<string, ReadonlySet<string>>> => {
  const series = new Map<string, Map<string, Set<string>>>()
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? /.exec(line)
    if (match === null) continue
    const labels = series.get(match[1]!) ?? new Map<string, Set<string>>()
    series.set(match[1]!, labels)
    for (const [, name, value] of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      const values = labels.get(name!) ?? new Set<string>()
      labels.set(name!, values)
      values.add(value!)
    }
  }
  return series
}

/** What in `query` names a metric or a label /metrics does not have; empty when it all exists. */
const problems = (query: string, metrics: ReturnType<typeof seriesOf>): ReadonlyArray<string> => {
  const found: Array<string> = []
  const text = query.replaceAll("$__rate_interval", "5m").replaceAll("$instance", ".*")
  const names = [...new Set([...text.matchAll(/\bsmtp_bridge_\w+/g)].map((m) => m[0]))]
  if (names.length === 0) found.push("names no smtp_bridge metric")
  for (const name of names) if (!metrics.has(name)) found.push(`metric ${name} is not in /metrics`)
  const hasLabel = (label: string, among: ReadonlyArray<string>) =>
    targetLabels.has(label) || among.some((name) => metrics.get(name)?.has(label) === true)
  // Selectors: metric{label op "value", ...}; an equality must match a value that was exported.
  for (const [, name, body] of text.matchAll(/\b(smtp_bridge_\w+)\{([^}]*)\}/g)) {
    for (const [, label, op, value] of body!.matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)) {
      if (!hasLabel(label!, [name!])) found.push(`${name} has no label ${label}`)
      else if (op === "=" && !targetLabels.has(label!) && metrics.get(name!)?.get(label!)?.has(value!) !== true) {
        found.push(`${name} never has ${label}="${value}"`)
      }
    }
  }
  // Grouping and label_values(): the label must be on one of the query's metrics.
  for (const [, list] of text.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    for (const label of list!.split(",").map((l) => l.trim()).filter((l) => l !== "")) {
      if (!hasLabel(label, names)) found.push(`no metric of the query has the label ${label}`)
    }
  }
  for (const [, name, label] of text.matchAll(/label_values\(\s*(\w+)\s*,\s*(\w+)\s*\)/g)) {
    if (!hasLabel(label!, [name!])) found.push(`${name} has no label ${label}`)
  }
  return found
}

describe("docs/deploy dashboards and alerts against a live /metrics", () => {
  let bridge: TestBridge
  let metrics: ReturnType<typeof seriesOf>

  beforeAll(async () => {
    const spool = fs.mkdtempSync(path.join(os.tmpdir(), "sb-dash-spool-"))
    // An upstream that is down: nothing listens on this port, so the spool's first attempt fails.
    const down = await freePort()
    bridge = await startBridge({
      admin: "127.0.0.1:0",
      allowInsecureAuth: true,
      senders: { alice: ["*"] },
      spool: { dir: spool },
      transports: { upstream: { type: "smtp", url: `smtp://127.0.0.1:${down}` } },
      defaultTransport: "upstream",
      plugins: [rateLimit({ perUser: "1/hour", authFailures: false }), passwordAuth]
    })
    const c = await open(bridge.port)
    expect(await c.command(`AUTH PLAIN ${plain("alice", "wrong")}`)).toBe("535 5.7.8 Authentication credentials invalid")
    c.close()
    const alice = await login(bridge.port, "alice")
    expect((await mail(alice, "alice@example.org")).final).toMatch(/^250 /)
    expect((await mail(alice, "alice@example.org")).mail).toMatch(/^451 4\.7\.1 /)
    expect(await alice.command("QUIT")).toMatch(/^221 /)
    const admin = bridge.running.admin!.port
    const scrape = async () => (await fetch(`http://127.0.0.1:${admin}/metrics`)).text()
    // The spool's first delivery attempt and the sessions' ends are counted a moment later.
    const text = await until("the failed delivery and the spooled message in /metrics", async () => {
      const body = await scrape()
      return /^smtp_bridge_delivery_duration_seconds_count\{[^}]*\} [1-9]/m.test(body) && /^smtp_bridge_spool_messages 1$/m.test(body) &&
        /^smtp_bridge_sessions_total\{/m.test(body) && body
    }, { timeout: 20_000 })
    metrics = seriesOf(text)
  }, 60_000)
  afterAll(() => bridge?.stop())

  it("has a query for queue age, delivery failures, AUTH failures, rate-limit hits, upstream latency and connections", () => {
    const all = queries.map(([, q]) => q).join("\n")
    for (
      const metric of [
        "smtp_bridge_spool_oldest_age_seconds", "smtp_bridge_delivery_duration_seconds_count", "smtp_bridge_auth_failures_total",
        "smtp_bridge_rate_limit_hits_total", "smtp_bridge_delivery_duration_seconds_bucket", "smtp_bridge_connections_open"
      ]
    ) expect(all, metric).toContain(metric)
    expect(queries.filter(([where]) => where.startsWith("alert ")).length).toBeGreaterThanOrEqual(5)
  })

  it.each(queries)("%s names only metrics and labels that /metrics has", (_where, query) => {
    expect(problems(query, metrics)).toEqual([])
  })

  it("would catch a misspelt metric, a label a metric lacks, and a label value never exported", () => {
    expect(problems("sum(rate(smtp_bridge_auth_failure_total[5m]))", metrics)).toEqual(["metric smtp_bridge_auth_failure_total is not in /metrics"])
    expect(problems("sum by (mechanizm) (rate(smtp_bridge_auth_failures_total[5m]))", metrics)).toEqual([
      "no metric of the query has the label mechanizm"
    ])
    expect(problems(`smtp_bridge_rate_limit_hits_total{scope="user"}`, metrics)).toEqual(["smtp_bridge_rate_limit_hits_total has no label scope"])
    expect(problems(`smtp_bridge_auth_failures_total{reason="password"}`, metrics)).toEqual([
      `smtp_bridge_auth_failures_total never has reason="password"`
    ])
  })
})
